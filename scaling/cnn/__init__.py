"""CNN width families (Sharma & Kaplan A.4, Tables 2 and 3): models, training, the width
sweep with last-layer IDs, local dataset readers, and the digits demo (``python -m scaling.cnn``).
Needs torch.
"""

from scaling.cnn._cnn import (
    FAMILIES,
    CNNTraining,
    cifar10_cnn,
    cifar10_n_params,
    digits_demo,
    hidden_activations,
    mnist_cnn,
    mnist_n_params,
    n_params,
    svhn_cnn,
    svhn_n_params,
    train_cnn,
    width_sweep,
)
from scaling.cnn._datasets import (
    load_digits_images,
    read_cifar10,
    read_idx,
    read_mnist,
    read_svhn,
)

__all__ = [
    "FAMILIES",
    "CNNTraining", "cifar10_cnn", "cifar10_n_params", "digits_demo", "hidden_activations",
    "load_digits_images", "mnist_cnn", "mnist_n_params", "n_params", "read_cifar10",
    "read_idx", "read_mnist", "read_svhn", "svhn_cnn", "svhn_n_params", "train_cnn",
    "width_sweep",
]
