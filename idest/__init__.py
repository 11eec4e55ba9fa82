"""idest: the intrinsic dimension of neural-network activations.

Exact k-nearest neighbours (:func:`knn`), intrinsic-dimension estimators,
synthetic manifolds of known dimension (:mod:`idest.datasets`) and activation
capture from PyTorch models.
"""

from idest.activations import Reduction, capture, hooks, list_sites, resolve_sites
from idest.diagnostics import id_vs_k, id_vs_n_points
from idest.duplicates import DuplicatesWarning
from idest.estimate import estimate_all
from idest.mle import LevinaBickel, mle
from idest.neighbors import Neighbors, knn
from idest.results import CDFFit, IDCurve, IDResult
from idest.twonn import KNNCDF, TwoNN, cdf_fit_data, knn_cdf, twonn

__version__ = "0.1.0"

__all__ = ["Neighbors", "knn", "__version__",
           "twonn", "knn_cdf", "mle", "estimate_all", "cdf_fit_data", "id_vs_k", "id_vs_n_points",
           "TwoNN", "KNNCDF", "LevinaBickel", "IDResult", "IDCurve", "CDFFit",
           "DuplicatesWarning",
           "capture", "list_sites", "resolve_sites", "hooks", "Reduction"]
