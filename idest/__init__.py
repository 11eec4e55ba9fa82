"""idest: the intrinsic dimension of neural-network activations.

Exact k-nearest neighbours (:func:`knn`), intrinsic-dimension estimators,
synthetic manifolds of known dimension (:mod:`idest.datasets`) and activation
capture from PyTorch models.
"""

from idest.neighbors import Neighbors, knn

__version__ = "0.1.0"

__all__ = ["Neighbors", "knn", "__version__"]
