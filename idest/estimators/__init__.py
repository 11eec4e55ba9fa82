"""Intrinsic-dimension estimators with error bars and scale diagnostics.

``_twonn``        TwoNN and its k-neighbour CDF generalisation (Sharma & Kaplan eq. 2.7-2.8)
``_mle``          Levina-Bickel maximum likelihood (B.11-B.13)
``_gride``        GRIDE across scales and its plateau (Denti et al. 2022)
``_combined``     all of them from one k-NN search
``_diagnostics``  ID against k and against the number of points
``_kernels``      the per-point Numba arithmetic they share
``_bootstrap``    option checks, the bootstrap over points, result assembly
``_duplicates``   the duplicates policy
``_results``      the frozen result objects
"""

from idest.estimators._combined import estimate_all
from idest.estimators._diagnostics import id_vs_k, id_vs_n_points
from idest.estimators._duplicates import DuplicatesWarning
from idest.estimators._gride import GRIDE, GRIDEResult, NoPlateauWarning, find_plateau, gride
from idest.estimators._mle import MLE, mle
from idest.estimators._results import CDFFit, IDCurve, IDResult
from idest.estimators._twonn import KNNCDF, TwoNN, cdf_fit_data, knn_cdf, twonn

__all__ = ["CDFFit", "DuplicatesWarning", "GRIDE", "GRIDEResult", "IDCurve", "IDResult", "KNNCDF",
           "MLE", "NoPlateauWarning", "TwoNN", "cdf_fit_data", "estimate_all", "find_plateau",
           "gride", "id_vs_k", "id_vs_n_points", "knn_cdf", "mle", "twonn"]
