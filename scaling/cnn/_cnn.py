"""The CNN families of Sharma & Kaplan A.4 (Tables 2 and 3), their training and width sweeps.

Every network is all-ReLU and scales by one channel width n:

* CIFAR-10 (Table 2, the TensorFlow tutorial CNN): Conv 3×3 n (same) → MaxPool 2 →
  Conv 3×3 2n (same) → MaxPool 2 → Conv 3×3 2n (valid) → Dense 64 → Dense 10;
  N = 714 + 4640 n + 54 n².
* MNIST / Fashion-MNIST (Table 3, left): Conv 3×3 n (same) → MaxPool 2 → Conv 3×3 n
  (valid) → MaxPool 2 → Dense 32 → Dense 10 on 28×28×1; N = 362 + 1163 n + 9 n².
* SVHN (Table 3, right): the same layers on 32×32×3; N = 362 + 1597 n + 9 n².

The output shapes of Table 3 (28 → 14 → 12 → 6 and 32 → 16 → 14 → 7) fix the
padding: the first convolution keeps the size, the second does not. The Table 3
counts above follow from those shapes (the paper does not print them). Weights
are initialised as Keras does by default (Glorot uniform, zero biases), since the
paper's networks were TensorFlow ones; PyTorch's own default left the narrowest
MNIST networks stuck at chance in our runs.

Training follows A.4: Adam with default hyper-parameters, a fixed number of
epochs, and the test loss and training loss reported at the epoch where the test
loss is lowest (early stopping); the weights of that epoch are restored. The
intrinsic dimension is measured on the activations of the last hidden layer
(the ReLU after the Dense 64 / Dense 32 layer), named ``"hidden"`` in every model.

This module needs torch; ``import scaling`` does not import it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from idest.utils import (
    RecordStore,
    as_completed_units,
    check_choice,
    check_int,
    check_positive,
    content_hash,
    limit_threads,
    progress_bar,
)
from scaling.teacher_student import activation_dimension

ImageSet = tuple[np.ndarray, np.ndarray]
"""(images of shape (n, height, width, channels), uint8 or float in [0, 1]; int labels (n,))."""


def _cnn(n: int, channels: int, size: int, widths: tuple[int, int, int | None],
         dense: int) -> nn.Sequential:
    """Conv(same) → pool → Conv(...) → pool → [Conv(valid)] → Dense → Dense 10, all ReLU."""
    c1, c2, c3 = widths
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(channels, c1, 3, padding=1)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
    ]
    side = size // 2
    if c3 is None:  # Table 3: the second convolution is valid, then a second pool
        layers += [("conv2", nn.Conv2d(c1, c2, 3)), ("relu2", nn.ReLU()),
                   ("pool2", nn.MaxPool2d(2))]
        side, last = (side - 2) // 2, c2
    else:  # Table 2: same, pool, then a valid third convolution
        layers += [("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()),
                   ("pool2", nn.MaxPool2d(2)), ("conv3", nn.Conv2d(c2, c3, 3)),
                   ("relu3", nn.ReLU())]
        side, last = side // 2 - 2, c3
    layers += [("flatten", nn.Flatten()), ("dense", nn.Linear(last * side * side, dense)),
               ("hidden", nn.ReLU()), ("output", nn.Linear(dense, 10))]
    model = nn.Sequential(OrderedDict(layers))
    for module in model.modules():  # Keras defaults, as in the paper's TensorFlow networks
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def cifar10_cnn(n: int) -> nn.Sequential:
    """The CIFAR-10 network of Sharma & Kaplan Table 2 with channel width ``n``.

    Examples
    --------
    >>> net = cifar10_cnn(2)
    >>> sum(p.numel() for p in net.parameters()) == 714 + 4640 * 2 + 54 * 2 ** 2
    True
    """
    n = check_int(n, "n", "cifar10_cnn", 1)
    return _cnn(n, 3, 32, (n, 2 * n, 2 * n), 64)


def mnist_cnn(n: int) -> nn.Sequential:
    """The MNIST / Fashion-MNIST network of Sharma & Kaplan Table 3 (left), width ``n``.

    Examples
    --------
    >>> import torch
    >>> mnist_cnn(3)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    n = check_int(n, "n", "mnist_cnn", 1)
    return _cnn(n, 1, 28, (n, n, None), 32)


def svhn_cnn(n: int) -> nn.Sequential:
    """The SVHN network of Sharma & Kaplan Table 3 (right), width ``n``.

    Examples
    --------
    >>> import torch
    >>> svhn_cnn(3)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    n = check_int(n, "n", "svhn_cnn", 1)
    return _cnn(n, 3, 32, (n, n, None), 32)


def cifar10_n_params(n: int) -> int:
    """N = 714 + 4640 n + 54 n², the size of the Table 2 network (its caption).

    Examples
    --------
    >>> cifar10_n_params(5) == n_params(cifar10_cnn(5))
    True
    """
    return 714 + 4640 * n + 54 * n * n


def mnist_n_params(n: int) -> int:
    """N = 362 + 1163 n + 9 n² for the MNIST network of Table 3 (from its layer shapes).

    Examples
    --------
    >>> mnist_n_params(4) == n_params(mnist_cnn(4))
    True
    """
    return 362 + 1163 * n + 9 * n * n


def svhn_n_params(n: int) -> int:
    """N = 362 + 1597 n + 9 n² for the SVHN network of Table 3 (from its layer shapes).

    Examples
    --------
    >>> svhn_n_params(4) == n_params(svhn_cnn(4))
    True
    """
    return 362 + 1597 * n + 9 * n * n


#: Family name -> network builder; Fashion-MNIST uses the MNIST network.
FAMILIES: dict[str, Callable[[int], nn.Sequential]] = {
    "cifar10": cifar10_cnn, "mnist": mnist_cnn, "fashion_mnist": mnist_cnn, "svhn": svhn_cnn,
}


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters N.

    Examples
    --------
    >>> n_params(mnist_cnn(1)) == mnist_n_params(1)
    True
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- data


def _tensors(data: ImageSet, model: nn.Module, name: str, caller: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """NCHW image tensor (a view when possible) and int64 labels, validated."""
    images, labels = data
    images, labels = np.asarray(images), np.asarray(labels)
    channels = model.conv1.in_channels
    if images.ndim != 4 or images.shape[-1] != channels:
        raise ValueError(f"{caller}: {name} images must have shape (n, height, width, "
                         f"{channels}), got {images.shape}; add a channel axis with "
                         "images[..., None] for grey images.")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{caller}: {name} has {images.shape[0]} images but labels of shape "
                         f"{labels.shape}; pass one label per image.")
    if images.shape[0] == 0:
        raise ValueError(f"{caller}: {name} is empty.")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{caller}: {name} labels must be integers in 0..9, got dtype "
                         f"{labels.dtype} with range [{labels.min()}, {labels.max()}].")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise ValueError(f"{caller}: {name} images must be uint8 (0..255) or float in [0, 1], "
                         f"got dtype {images.dtype}.")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x, torch.from_numpy(labels.astype(np.int64))


def _float_batch(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
              ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y)."""
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(_float_batch(x[start : start + batch_size]))
            target = y[start : start + batch_size]
            total += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    return total / x.shape[0], correct / x.shape[0]


# ----------------------------------------------------------------------- training


@dataclass(frozen=True)
class CNNTraining:
    """The outcome of :func:`train_cnn`, at the early-stopping epoch.

    Attributes
    ----------
    test_loss, train_loss : float
        Cross-entropy at the epoch of the lowest test loss.
    test_accuracy : float
        Accuracy at that epoch.
    best_epoch, epochs_run : int
        The early-stopping epoch (1-based) and the number of epochs trained.
    history : tuple of (int, float, float)
        (epoch, train loss, test loss) after every epoch.
    seconds : float
        Wall time of the training.
    """

    test_loss: float
    train_loss: float
    test_accuracy: float
    best_epoch: int
    epochs_run: int
    history: tuple[tuple[int, float, float], ...]
    seconds: float


def train_cnn(
    model: nn.Module,
    train: ImageSet,
    test: ImageSet,
    *,
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int | None = None,
    train_eval_samples: int = 10_000,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: bool | None = None,
) -> CNNTraining:
    """Train with Adam and early stopping on the test loss (Sharma & Kaplan A.4).

    The model's weights are initialised by the caller (seed torch before building
    it); ``seed`` drives the shuffling. After every epoch the test loss and the
    training loss (on a fixed subset of at most ``train_eval_samples`` training
    images) are measured; the weights of the epoch with the lowest test loss are
    restored at the end and its numbers are returned.

    Parameters
    ----------
    model : torch.nn.Module
        One of the networks of this module (any model with a ``conv1`` input layer).
    train, test : (images, labels)
        Images of shape (n, height, width, channels), uint8 (scaled by 1/255) or
        float in [0, 1]; labels 0..9.
    epochs : int, default=50
        The paper trains 50 epochs (5 for SVHN).
    batch_size : int, default=32
        Keras' default, which the paper's TensorFlow tutorial network used.
    lr : float, default=1e-3
        Adam's default learning rate.
    patience : int, optional
        Stop once the test loss has not improved for this many epochs (saves time;
        the paper ran every epoch and took the minimum, which ``None`` does).
    train_eval_samples : int, default=10000
        Training images used to measure the training loss.
    seed : int, default=0
        Seed of the batch order.
    n_jobs : int, optional
        torch threads while training (restored after); None leaves torch's setting.
        On a shared, busy machine 1 thread is often many times faster than 2.
    progress : bool, optional
        A progress bar over epochs.

    Returns
    -------
    CNNTraining

    Examples
    --------
    >>> import numpy as np, torch
    >>> rng = np.random.default_rng(0)
    >>> data = (rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64))
    >>> _ = torch.manual_seed(0)
    >>> result = train_cnn(mnist_cnn(2), data, data, epochs=2, progress=False)
    >>> result.epochs_run, result.best_epoch in (1, 2)
    (2, True)
    """
    caller = "train_cnn"
    epochs = check_int(epochs, "epochs", caller, 1)
    batch_size = check_int(batch_size, "batch_size", caller, 1)
    if patience is not None:
        patience = check_int(patience, "patience", caller, 1)
    check_positive(lr, "lr", caller)
    x_train, y_train = _tensors(train, model, "train", caller)
    x_test, y_test = _tensors(test, model, "test", caller)
    if n_jobs is not None:
        n_jobs = check_int(n_jobs, "n_jobs", caller, 1)
    with limit_threads(n_jobs):
        return _train(model, (x_train, y_train), (x_test, y_test), epochs, batch_size, lr,
                      patience, train_eval_samples, seed, progress)


def _train(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
           test: tuple[torch.Tensor, torch.Tensor], epochs: int, batch_size: int, lr: float,
           patience: int | None, train_eval_samples: int, seed: int,
           progress: bool | None) -> CNNTraining:
    (x_train, y_train), (x_test, y_test) = train, test
    generator = torch.Generator().manual_seed(seed)
    eval_rows = torch.randperm(x_train.shape[0], generator=generator)[:train_eval_samples]
    x_eval, y_eval = x_train[eval_rows], y_train[eval_rows]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best: tuple[float, float, float, int] | None = None
    best_state: dict[str, torch.Tensor] = {}
    history = []
    started = time.perf_counter()
    with progress_bar(progress, total=epochs, desc="epochs", unit="epoch") as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(x_train.shape[0], generator=generator)
            for start in range(0, order.numel(), batch_size):
                rows = order[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(_float_batch(x_train[rows])),
                                                   y_train[rows])
                loss.backward()
                optimizer.step()
            test_loss, test_accuracy = _evaluate(model, x_test, y_test, 4 * batch_size)
            train_loss, _ = _evaluate(model, x_eval, y_eval, 4 * batch_size)
            history.append((epoch, train_loss, test_loss))
            if not math.isfinite(test_loss):
                break
            if best is None or test_loss < best[0]:
                best = (test_loss, train_loss, test_accuracy, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if bar is not None:
                bar.update(1)
                bar.set_postfix(test_loss=f"{test_loss:.4f}", best=f"{best[0]:.4f}")
            if patience is not None and epoch - best[3] >= patience:
                break
    if best is None:
        raise ValueError("train_cnn: the test loss was not finite after the first epoch; "
                         "lower lr.")
    model.load_state_dict(best_state)
    return CNNTraining(test_loss=best[0], train_loss=best[1], test_accuracy=best[2],
                       best_epoch=best[3], epochs_run=len(history), history=tuple(history),
                       seconds=time.perf_counter() - started)


def hidden_activations(model: nn.Sequential, images: np.ndarray, *,
                       batch_size: int = 512) -> np.ndarray:
    """Activations of the last hidden layer (the ReLU after the first Dense layer).

    Parameters
    ----------
    model : torch.nn.Sequential
        A network of this module.
    images : ndarray of shape (n, height, width, channels)
        uint8 (scaled by 1/255) or float in [0, 1].
    batch_size : int, default=512

    Returns
    -------
    ndarray of float32, shape (n, 64) for CIFAR-10, (n, 32) for Table 3

    Examples
    --------
    >>> import numpy as np
    >>> hidden_activations(cifar10_cnn(1), np.zeros((5, 32, 32, 3), np.uint8)).shape
    (5, 64)
    """
    names = list(dict(model.named_children()))
    trunk = model[: names.index("hidden") + 1]
    x, _ = _tensors((images, np.zeros(len(images), np.int64)), model, "images",
                    "hidden_activations")
    model.eval()
    with torch.no_grad():
        out = [trunk(_float_batch(x[s : s + batch_size])) for s in range(0, x.shape[0],
                                                                         batch_size)]
    return torch.cat(out).numpy()


# -------------------------------------------------------------------------- sweep

_SWEEP_COLUMNS = ["family", "n", "n_params", "seed", "loss", "train_loss", "test_accuracy",
                  "best_epoch", "epochs_run", "seconds", "id_twonn", "id_mle", "id_points",
                  "id_duplicates_dropped", "note", "config"]


def _hidden_id(model: nn.Sequential, images: np.ndarray) -> dict[str, float | int | str]:
    """TwoNN and Levina–Bickel MLE of the last hidden layer, as CSV columns (the sweep's:
    not ``live_units``, which its CSVs were written without)."""
    found = activation_dimension(hidden_activations(model, images)).to_dict()
    return {key: value for key, value in found.items() if key in _SWEEP_COLUMNS}


def _sweep_store(path: Path) -> RecordStore:
    """The resumable CSV of :func:`width_sweep`: one record per (family, n, seed, config)."""
    return RecordStore(path, _SWEEP_COLUMNS, ("family", "n", "seed", "config"),
                       parsers={"n": int, "seed": int, "n_params": int}, owner="width_sweep")


def _finished_runs(store: RecordStore | None, family: str, config: str) -> list[dict[str, Any]]:
    """The stored runs of this family made with this configuration (say how many are not)."""
    if store is None:
        return []
    rows = [row for row in store.read() if row["family"] == family]
    other = sum(row["config"] != config for row in rows)
    if other:
        warnings.warn(f"width_sweep: {store.path} holds {other} {family} run(s) made with other "
                      "settings or data; they are not reused.", UserWarning, stacklevel=3)
    return [row for row in rows if row["config"] == config]


def width_sweep(
    family: str,
    widths: Sequence[int],
    train: ImageSet,
    test: ImageSet,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int | None = None,
    measure_id: bool = True,
    id_samples: int = 5000,
    results: str | Path | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    client: Any = None,
) -> list[dict[str, Any]]:
    """Train one network per (width, seed) and return the tidy table of L(N).

    Each run builds the family's network after ``torch.manual_seed(seed)``, trains it
    with :func:`train_cnn` and, if ``measure_id``, estimates the ID of its last
    hidden layer on up to ``id_samples`` test images with TwoNN and the MLE (k = 20).
    With ``results`` each finished run is appended to that CSV at once, and runs
    already in it are not redone, so an interrupted sweep resumes where it stopped.
    Its ``config`` column is a hash of everything else a run depends on (the
    training and test data, ``epochs``, ``batch_size``, ``lr``, ``patience``,
    ``measure_id``, ``id_samples``): a run is reused only under the same hash.

    Parameters
    ----------
    family : {"cifar10", "mnist", "fashion_mnist", "svhn"}
    widths : sequence of int
        Channel widths n (the paper: 1..13 for CIFAR-10).
    train, test : (images, labels)
        See :func:`train_cnn`.
    seeds : sequence of int, default=(0,)
    epochs, batch_size, lr, patience
        Passed to :func:`train_cnn`.
    measure_id : bool, default=True
    id_samples : int, default=5000
    results : str or Path, optional
        CSV to append to and resume from.
    n_jobs : int, optional
        torch threads while training (see :func:`train_cnn`); with a client, default:
        the threads of the worker that trains the run.
    progress : bool, optional
        A progress bar over runs.
    client : distributed.Client, optional
        Train the runs on this Dask cluster (``pip install 'idest[dask]'``): one
        ``client.submit`` per (width, seed), the data sent to every worker once; this
        process appends each finished run to ``results``, so a worker lost mid-run
        costs that run only and an interrupted sweep resumes from the CSV.

    Returns
    -------
    list of dict
        One row per run with ``family, n, n_params, seed, loss`` (test loss at early
        stopping), ``train_loss, test_accuracy, best_epoch, epochs_run, seconds`` and
        ``id_twonn, id_mle, id_points, id_duplicates_dropped`` (empty without
        ``measure_id``, or when the layer is dead, which ``note`` then says);
        ``idest fit results.csv`` reads it directly.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = (rng.random((40, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 40))
    >>> rows = width_sweep("mnist", [1, 2], data, data, epochs=1, measure_id=False,
    ...                    progress=False)
    >>> [(r["n"], r["n_params"]) for r in rows]
    [(1, 1534), (2, 2724)]
    """
    caller = "width_sweep"
    check_choice(family, "family", caller, sorted(FAMILIES))
    widths = [check_int(n, "widths", caller, 1) for n in widths]
    seeds = [check_int(s, "seeds", caller, 0) for s in seeds]
    if not widths or not seeds:
        raise ValueError(f"{caller}: needs at least one width and one seed.")
    store = _sweep_store(Path(results)) if results is not None else None
    config = content_hash([np.asarray(a) for a in (*train, *test)]
                          + [epochs, batch_size, float(lr), patience, measure_id,
                             id_samples if measure_id else None])[:16]
    rows = _finished_runs(store, family, config)
    done = {(int(r["n"]), int(r["seed"])) for r in rows}
    todo = [(n, s) for n in widths for s in seeds if (n, s) not in done]
    run = dict(family=family, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
               measure_id=measure_id, id_samples=id_samples, config=config)
    with progress_bar(progress, total=len(todo), desc=f"{family} widths", unit="run") as bar:
        def finish(row: dict[str, Any]) -> None:
            rows.append(row)
            if store is not None:
                store.append([row])
            if bar is not None:
                bar.update(1)

        if client is None:
            for n, seed in todo:
                finish(_width_run(n, seed, train, test, run, n_jobs))
        else:  # the data goes to every worker once; a lost worker's copy is not needed
            data = client.scatter([train, test], broadcast=True) if todo else [None, None]
            units = [(n, seed, *data, run, None) for n, seed in todo]
            with as_completed_units(client, _width_run, units, caller=caller,
                                    n_jobs=n_jobs) as finished:
                for _, row in finished:
                    finish(row)
    order = {key: i for i, key in enumerate((n, s) for n in widths for s in seeds)}
    selected = [_typed(r) for r in rows if (int(r["n"]), int(r["seed"])) in order]
    return sorted(selected, key=lambda r: order[(r["n"], r["seed"])])


def _width_run(n: int, seed: int, train: ImageSet, test: ImageSet, run: dict[str, Any],
               n_jobs: int | None) -> dict[str, Any]:
    """One run of :func:`width_sweep` (``run``: its settings), as its CSV row."""
    torch.manual_seed(seed)
    model = FAMILIES[run["family"]](n)
    outcome = train_cnn(model, train, test, epochs=run["epochs"], batch_size=run["batch_size"],
                        lr=run["lr"], patience=run["patience"], seed=seed, n_jobs=n_jobs,
                        progress=False)
    row: dict[str, Any] = {
        "family": run["family"], "n": n, "n_params": n_params(model), "seed": seed,
        "loss": outcome.test_loss, "train_loss": outcome.train_loss,
        "test_accuracy": outcome.test_accuracy, "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run, "seconds": round(outcome.seconds, 2),
        "id_twonn": "", "id_mle": "", "id_points": "", "id_duplicates_dropped": "",
        "note": "", "config": run["config"],
    }
    if run["measure_id"]:
        row.update(_hidden_id(model, np.asarray(test[0])[: run["id_samples"]]))
    return row


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from CSV (all strings) with its numbers restored."""
    out: dict[str, Any] = {}
    for key in _SWEEP_COLUMNS:
        value = row[key]
        if key in ("family", "note", "config") or value == "":
            out[key] = value
        elif key in ("n", "n_params", "seed", "best_epoch", "epochs_run", "id_points",
                     "id_duplicates_dropped"):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


# --------------------------------------------------------------------------- demo


def digits_demo(
    out_dir: str | Path = "digits_cnn",
    *,
    widths: Sequence[int] = (1, 2, 4, 8),
    seeds: Sequence[int] = (0, 1),
    epochs: int = 25,
    patience: int | None = 4,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Offline width sweep of the MNIST network of Table 3 on scikit-learn's digits.

    The 1797 8×8 digits are upsampled to 28×28 (:func:`scaling.cnn.load_digits_images`)
    and split 70/30, stratified. One network per (width, seed) is trained with Adam
    and early stopping on the test loss; the test loss at the early-stopping epoch
    is fitted with :func:`scaling.fit_power_law` and the ID of the Dense-32 layer is
    measured with TwoNN. This is a demonstration of the pipeline on data that exists
    offline, not a reproduction: 1257 training images overfit quickly, so the
    power-law region is short. Writes ``digits_sweep.csv`` (resumable), ``.json``,
    ``.png`` and ``.md`` in ``out_dir``. With a Dask ``client`` the runs train on that
    cluster (:func:`width_sweep`).

    Returns
    -------
    dict
        ``rows`` (the tidy table), ``fit`` (PowerLawFit), ``d_pred`` and the paths written.

    Examples
    --------
    A smoke run (three widths, one seed, two epochs: seconds; the defaults take minutes):

    >>> import tempfile
    >>> result = digits_demo(tempfile.mkdtemp(), widths=(1, 2, 4), seeds=(0,), epochs=2,
    ...                      progress=False)
    >>> sorted(result), len(result["rows"])
    (['d_pred', 'fit', 'paths', 'rows'], 3)
    """
    import json

    from sklearn.model_selection import train_test_split

    from scaling.cnn._datasets import load_digits_images
    from scaling.fit import fit_power_law, predicted_dimension

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits_images()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.3,
                                                        stratify=labels, random_state=0)
    rows = width_sweep("mnist", widths, (x_train, y_train), (x_test, y_test), seeds=seeds,
                       epochs=epochs, patience=patience, results=out / "digits_sweep.csv",
                       n_jobs=n_jobs, progress=progress, client=client)
    N = [r["n_params"] for r in rows]
    fit = fit_power_law(N, [r["loss"] for r in rows], seeds=[r["seed"] for r in rows])
    d_pred = predicted_dimension(fit) if fit.alpha > 0 else None
    paths = {"csv": out / "digits_sweep.csv", "json": out / "digits_sweep.json",
             "png": out / "digits_sweep.png", "md": out / "digits_sweep.md"}
    paths["json"].write_text(json.dumps({"fit": fit.to_dict(), "rows": rows}, indent=2) + "\n")
    _digits_plot(rows, fit, d_pred, paths["png"])
    paths["md"].write_text(_digits_summary(rows, fit, d_pred, epochs, patience))
    return {"rows": rows, "fit": fit, "d_pred": d_pred, "paths": paths}


def _digits_plot(rows: list[dict[str, Any]], fit: Any, d_pred: Any, path: Path) -> None:
    from matplotlib.figure import Figure

    from scaling.fit import plot_fit

    N = np.array([r["n_params"] for r in rows], dtype=float)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    plot_fit(left, N, [r["loss"] for r in rows], fit, label="test loss")
    left.plot(N, [r["train_loss"] for r in rows], "x", color="grey", label="train loss")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    left.set_title("digits (8×8 → 28×28), MNIST net of Table 3")
    measured = [r for r in rows if r["id_twonn"] != ""]
    if measured:
        right.plot([r["n_params"] for r in measured], [r["id_twonn"] for r in measured], "o",
                   label="TwoNN ID of each run")
        right.set_xscale("log")
        right.set_xlabel("parameters N")
        right.set_ylabel("dimension")
        if d_pred is not None:
            low, high = d_pred.interval
            top = max(right.get_ylim()[1], d_pred.dimension) * 1.3
            right.axhline(d_pred.dimension, ls="--", color="C1", label="4/α")
            if np.isfinite(low):  # an open upper end is cut at the axis and said so
                right.axhspan(low, min(high, top), color="C1", alpha=0.2,
                              label=f"4/α 95% interval [{low:.1f}, "
                              f"{'∞' if np.isinf(high) else f'{high:.1f}'}]"
                              + (" (open above)" if high > top else ""))
            right.set_ylim(0, top)
        right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.savefig(path, dpi=110)


def _digits_summary(rows: list[dict[str, Any]], fit: Any, d_pred: Any, epochs: int,
                    patience: int | None) -> str:
    lines = [
        "# CNN width sweep on scikit-learn digits (offline demo)",
        "",
        f"MNIST network of Sharma & Kaplan Table 3 on the 8×8 digits upsampled to 28×28; "
        f"Adam (lr 1e-3), batch 32, at most {epochs} epochs, early stopping on the test loss "
        f"(patience {patience}). A pipeline demonstration, not a reproduction.",
        "",
        "| n | N | seed | test loss | train loss | accuracy | best epoch | ID (TwoNN) | ID (MLE) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ids = [f"{r[k]:.2f}" if r[k] != "" else "—" for k in ("id_twonn", "id_mle")]
        lines.append(f"| {r['n']} | {r['n_params']} | {r['seed']} | {r['loss']:.4f} | "
                     f"{r['train_loss']:.4f} | {r['test_accuracy']:.3f} | {r['best_epoch']} | "
                     f"{ids[0]} | {ids[1]} |")
    low, high = fit.interval
    lines += ["", f"Power-law fit ({fit.window} window, N {fit.n_min:.0f}–{fit.n_max:.0f}, "
              f"{fit.n_points} sizes): α = {fit.alpha:.3f} [{low:.3f}, {high:.3f}] "
              f"({fit.interval_method})."]
    if d_pred is not None:
        lines.append(f"4/α = {d_pred.dimension:.2f} [{d_pred.interval[0]:.2f}, "
                     f"{d_pred.interval[1]:.2f}].")
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str] | None = None) -> int:
    from idest.cli import Parser, cluster_client

    parser = Parser(prog="python -m scaling.cnn",
                    description="Offline CNN width sweep on sklearn digits.")
    parser.add_out("digits_cnn", "output folder (results.csv, the fit, figures, summary)")
    parser.add_argument("--widths", type=parser.number(int, 1), nargs="+", default=[1, 2, 4, 8],
                        help="channel widths n of the MNIST network")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="seeds of the runs at each width")
    parser.add_argument("--epochs", type=parser.number(int, 1), default=25,
                        help="most epochs per run")
    parser.add_argument("--patience", type=parser.number(int, 1), default=4,
                        help="epochs without a better test loss before a run stops")
    parser.add_argument("--jobs", type=parser.number(int, 1), default=1,
                        help="torch threads of each run")
    parser.add_quiet()
    parser.add_cluster()  # train the runs on a Dask cluster
    args = parser.parse_args(argv)
    with cluster_client(args) as client:
        result = digits_demo(args.out, widths=args.widths, seeds=args.seeds,
                             epochs=args.epochs, patience=args.patience, n_jobs=args.jobs,
                             progress=False if args.quiet else None, client=client)
    print(result["paths"]["md"].read_text())
    print("written:", ", ".join(str(p) for p in result["paths"].values()))
    return 0
