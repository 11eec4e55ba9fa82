"""Exact k-nearest neighbours: :func:`knn` and its result, :class:`Neighbors`.

One front end (``_knn``) validates the input and hands it to a backend; every
backend returns the same exact float64 answer, index for index:

``_backends``  the compiled core (``_core``, from ``cpp/``) and SciPy's k-d tree
``_numba``     the same algorithm as Numba kernels, a cross-check
``_torch``     the same algorithm in torch, on the data's device (a GPU)

and ``_distributed`` shards the same search over a Dask cluster (:func:`sharded_knn`).
"""

from idest.neighbors._distributed import sharded_knn
from idest.neighbors._knn import BACKENDS, Neighbors, default_n_jobs, knn
from idest.neighbors._torch import torch_knn

__all__ = ["BACKENDS", "Neighbors", "default_n_jobs", "knn", "sharded_knn",
           "torch_knn"]
