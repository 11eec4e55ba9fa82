"""The small frozen result objects returned by the intrinsic-dimension estimators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The interval of an estimate without one (no bootstrap).
NO_INTERVAL = (float("nan"), float("nan"))


def _jsonable(value: Any) -> Any:
    """Tuples and arrays as lists, numpy scalars as Python numbers."""
    if isinstance(value, tuple | np.ndarray):
        return np.asarray(value).tolist()
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class IDResult:
    """One intrinsic-dimension estimate and what was used to obtain it.

    Attributes
    ----------
    method : str
        ``"twonn"``, ``"knn_cdf"`` or ``"mle"``.
    k : int
        The neighbour the estimate uses: 2 for TwoNN, the k of μ_k for the
        k-NN CDF, the number of neighbours for the MLE (the upper end ``k2``
        when a range ``k1..k2`` was averaged).
    dimension : float
        The estimate (always finite).
    interval : tuple of float
        (low, high) percentile bootstrap interval over points; (nan, nan)
        without bootstrap.
    confidence : float
        The coverage aimed at by ``interval`` (e.g. 0.95).
    n_points : int
        Points used (after duplicates were dropped and near-duplicates merged).
    n_duplicates_dropped : int
        Extra copies of exactly repeated points removed from the data.
    n_near_duplicates_merged : int
        Points removed by the near-duplicate merge (``merge_tolerance``).
    variant : str
        How the estimate was formed, e.g. ``"regression, discard 0.1"`` or
        ``"biased, mean, k 10..20"``.
    std_error : float or None
        Standard deviation of the bootstrap estimates, None without bootstrap.
    n_bootstrap : int
        Number of bootstrap resamples (0 when none).
    local_dimensions : ndarray of shape (n_points,) or None
        Per-point (local) ID of the Levina–Bickel MLE (B.12/B.13); None for
        the other methods. May hold inf where r_1 = r_k.

    Examples
    --------
    >>> from idest.estimators import IDResult
    >>> r = IDResult("twonn", 2, 4.9, n_points=1000)
    >>> r.dimension, r.interval
    (4.9, (nan, nan))
    >>> r.to_dict()["interval"]
    [nan, nan]
    """

    method: str
    k: int
    dimension: float
    interval: tuple[float, float] = NO_INTERVAL
    confidence: float = 0.95
    n_points: int = 0
    n_duplicates_dropped: int = 0
    n_near_duplicates_merged: int = 0
    variant: str = ""
    std_error: float | None = None
    n_bootstrap: int = 0
    local_dimensions: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields as a JSON-ready dict (without ``local_dimensions``)."""
        return {name: _jsonable(getattr(self, name)) for name in self.__dataclass_fields__
                if name != "local_dimensions"}


@dataclass(frozen=True)
class IDCurve:
    """Estimates as a function of one parameter (k, or the number of points).

    Attributes
    ----------
    method : str
        Estimator used at every point of the curve.
    parameter : str
        ``"k"`` or ``"n_points"``.
    values : ndarray of shape (n_values,)
        The parameter values.
    dimensions : ndarray of shape (n_values, n_repeats)
        Every estimate (one column when the curve is deterministic).
    confidence : float, default=0.95
        The coverage aimed at by :attr:`interval`.

    Examples
    --------
    >>> import numpy as np
    >>> from idest.estimators import IDCurve
    >>> c = IDCurve("twonn", "n_points", np.array([100, 200]), np.array([[4., 6.], [5., 5.]]))
    >>> c.mean.tolist(), c.std.tolist()
    ([5.0, 5.0], [1.0, 0.0])
    >>> low, high = c.interval
    >>> low.tolist(), high.tolist()
    ([4.05, nan], [5.95, nan])
    """

    method: str
    parameter: str
    values: np.ndarray
    dimensions: np.ndarray
    confidence: float = 0.95

    @property
    def mean(self) -> np.ndarray:
        """Mean estimate at each parameter value."""
        return self.dimensions.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        """Spread (standard deviation over repeats) at each parameter value."""
        return self.dimensions.std(axis=1)

    @property
    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) arrays: the central ``confidence`` range of the repeats at each value.

        nan where the repeats do not vary (a single column, or the full data
        measured once): a spread of zero width would claim a certainty that
        was never measured.
        """
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(self.dimensions, [tail, 1 - tail], axis=1)
        flat = self.dimensions.min(axis=1) == self.dimensions.max(axis=1)
        return np.where(flat, np.nan, low), np.where(flat, np.nan, high)

    def to_dict(self) -> dict[str, Any]:
        """The fields (and the interval) as a JSON-ready dict of lists."""
        return {"method": self.method, "parameter": self.parameter,
                "values": _jsonable(self.values), "dimensions": _jsonable(self.dimensions),
                "confidence": self.confidence, "interval": _jsonable(np.array(self.interval))}


@dataclass(frozen=True)
class CDFFit:
    """The data behind a k-NN CDF / TwoNN fit (Sharma & Kaplan figure 16, eq. B.16).

    Attributes
    ----------
    k : int
        The neighbour of μ_k = r_k / r_1.
    log_mu : ndarray of shape (n_fit,)
        Sorted log μ_k of the points kept in the fit (the regressor).
    target : ndarray of shape (n_fit,)
        −log(1 − C_i^(1/(k−1))) with C_i = i / N (the response).
    dimension : float
        The fitted slope through the origin.
    interval : tuple of float
        (low, high) percentile bootstrap interval on the slope; (nan, nan)
        without bootstrap.
    confidence : float
        The coverage aimed at by ``interval``.

    Examples
    --------
    >>> import numpy as np
    >>> from idest.estimators import CDFFit
    >>> f = CDFFit(2, np.array([0.1, 0.2]), np.array([0.5, 1.0]), 5.0)
    >>> float(np.max(np.abs(f.target - f.dimension * f.log_mu)))
    0.0
    """

    k: int
    log_mu: np.ndarray
    target: np.ndarray
    dimension: float
    interval: tuple[float, float] = NO_INTERVAL
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (arrays as lists)."""
        return {name: _jsonable(getattr(self, name)) for name in self.__dataclass_fields__}
