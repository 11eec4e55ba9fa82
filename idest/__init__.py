"""idest: the intrinsic dimension of neural-network activations.

Exact k-nearest neighbours (:func:`knn`), intrinsic-dimension estimators,
synthetic manifolds of known dimension (:mod:`idest.datasets`) and activation
capture from PyTorch models.
"""

from idest.activations import Reduction, capture, hooks, list_sites, resolve_sites
from idest.estimators import (
    GRIDE,
    KNNCDF,
    MLE,
    CDFFit,
    DuplicatesWarning,
    GRIDEResult,
    IDCurve,
    IDResult,
    TwoNN,
    cdf_fit_data,
    estimate_all,
    gride,
    id_vs_k,
    id_vs_n_points,
    knn_cdf,
    mle,
    twonn,
)
from idest.neighbors import Neighbors, knn

__version__ = "0.2.0"

__all__ = ["Neighbors", "knn", "__version__",
           "twonn", "knn_cdf", "mle", "gride", "estimate_all", "cdf_fit_data", "id_vs_k",
           "id_vs_n_points", "TwoNN", "KNNCDF", "MLE", "GRIDE", "IDResult", "GRIDEResult",
           "IDCurve", "CDFFit",
           "DuplicatesWarning",
           "capture", "list_sites", "resolve_sites", "hooks", "Reduction"]
