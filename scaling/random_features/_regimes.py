"""The four scaling regimes of a random-feature model, and the duality α_D ≈ α_P ≈ α_K.

Bahri et al. (2021), sections 2.1–2.3 and supplement D. For a feature pool of size S
and a student of P Gaussian-projected features trained on D samples:

* ``variance_D``: L(D, P) − L(P) against D at fixed P ≪ D: α_D = 1 (S4, S7);
* ``resolution_D``: L(D) = L(D, P → ∞) against D ≪ S: α_D ≈ α_K (eq. 5, S11, S12);
* ``resolution_P``: L(P) = L(D → ∞, P) against P ≪ S: α_P ≈ α_K (eq. 4, S8);
* ``variance_P``: L(D, P) − L(D) against P at fixed D ≪ P: α_P = 1 (S10);

where the feature second-moment spectrum decays as λ_i ∝ i^−(1+α_K) (eq. 6). Every
loss is exact in the teacher average (:func:`scaling.random_features.linear_model_loss`);
the average over training sets and projections is over seeds. Finished points are
appended to a CSV (:class:`SweepCache`) so that an interrupted sweep resumes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from idest.utils import RecordStore, as_completed_units, check_choice, check_int, progress_bar
from scaling.fit import PowerLawFit, fit_power_law
from scaling.random_features._features import (
    FeaturePopulation,
    gaussian_projection,
    infinite_data_loss,
    linear_model_loss,
    power_law_population,
    relu_feature_population,
)

#: The four regimes: what is varied, what is subtracted, the expected exponent.
REGIMES: dict[str, str] = {
    "variance_D": "L(D, P) - L(P) against D at fixed P << D (variance-limited, alpha_D = 1)",
    "resolution_D": "L(D) = L(D, P = inf) against D << S (resolution-limited, alpha_D ~ alpha_K)",
    "resolution_P": "L(P) = L(D = inf, P) against P << S (resolution-limited, alpha_P ~ alpha_K)",
    "variance_P": "L(D, P) - L(D) against P at fixed D << P (variance-limited, alpha_P = 1)",
}

#: Kinds of feature source: the inputs that a random ReLU network sees, or Gaussian
#: features with an exact power-law spectrum.
SOURCE_KINDS = ("hypercube", "digits", "power_law")


@dataclass(frozen=True)
class FeatureSource:
    """A recipe for the feature pool F_M(x): inputs, network, pool size.

    Parameters
    ----------
    kind : {"hypercube", "digits", "power_law"}
        ``"hypercube"``: ``n_pool`` points uniform in [−½, ½]^d
        (:func:`idest.datasets.hypercube`, centred), d = ``parameter``;
        ``"digits"``: scikit-learn's 1797 8×8 digits average-pooled by
        ``parameter`` (1, 2 or 4; the pooled-MNIST analogue of Bahri figure 3),
        centred and scaled to [−½, ½]; ``"power_law"``: Gaussian features with
        λ_i = i^−(1+α_K), α_K = ``parameter`` (no network).
    parameter : float
        d, the pool factor or α_K.
    n_features : int, default=1024
        S.
    n_pool : int, default=8192
        Inputs in the population (hypercube only; the digits use all 1797).
    hidden : tuple of int, default=(256,)
        Hidden widths of the ReLU network before the feature layer.
    bias_std : float, default=0.0
        Bias scale of the network (0: zero biases, as in Sharma & Kaplan's teachers).

    Examples
    --------
    >>> source = FeatureSource("digits", 2, n_features=64)
    >>> source.inputs(0).shape, source.population(0).n_features
    ((1797, 16), 64)
    """

    kind: str
    parameter: float
    n_features: int = 1024
    n_pool: int = 8192
    hidden: tuple[int, ...] = (256,)
    bias_std: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.kind, "kind", "FeatureSource", SOURCE_KINDS)
        if self.kind == "digits" and self.parameter not in (1, 2, 4, 8):
            raise ValueError(f"FeatureSource: the digits pool factor must divide 8 (1, 2, 4 "
                             f"or 8), got {self.parameter!r}.")

    @property
    def name(self) -> str:
        """A short label, also the cache key of the source."""
        label = {"hypercube": f"hypercube d={self.parameter:g}",
                 "digits": f"digits pool={self.parameter:g}",
                 "power_law": f"power law alpha_K={self.parameter:g}"}[self.kind]
        if self.kind == "power_law":
            return f"{label} S={self.n_features}"
        pool = f" pool={self.n_pool}" if self.kind == "hypercube" else ""
        return (f"{label}{pool} S={self.n_features} hidden={list(self.hidden)} "
                f"bias={self.bias_std:g}")

    def inputs(self, seed: int) -> np.ndarray:
        """The population's inputs for one seed (hypercube and digits only)."""
        if self.kind == "hypercube":
            from idest.datasets import hypercube

            return hypercube(self.n_pool, int(self.parameter), random_state=seed) - 0.5
        if self.kind == "digits":
            from sklearn.datasets import load_digits

            pool = int(self.parameter)
            images = load_digits().images / 16.0
            pooled = images.reshape(-1, 8 // pool, pool, 8 // pool, pool).mean(axis=(2, 4))
            X = pooled.reshape(len(images), -1)
            return X - X.mean(axis=0)
        raise ValueError(f"FeatureSource.inputs: a {self.kind!r} source has no inputs.")

    def population(self, seed: int) -> FeaturePopulation:
        """The population of seed ``seed`` (its own inputs and network), memoised."""
        return _population(self, seed)


@functools.lru_cache(maxsize=8)
def _population(source: FeatureSource, seed: int) -> FeaturePopulation:
    if source.kind == "power_law":
        return power_law_population(source.n_features, source.parameter)
    return relu_feature_population(source.inputs(seed), n_features=source.n_features,
                                   hidden=source.hidden, bias_std=source.bias_std,
                                   random_state=seed, description=source.name)


def regime_point(population: FeaturePopulation, regime: str, size: int, *,
                 fixed: int | None = None, random_state: int = 0) -> tuple[float, float]:
    """One draw of the loss in a regime, and the limit it is measured against.

    Parameters
    ----------
    population : FeaturePopulation
        The features.
    regime : str
        A key of :data:`REGIMES`.
    size : int
        The varied quantity (D for ``*_D``, P for ``*_P``).
    fixed : int, optional
        P for ``variance_D``, D for ``variance_P`` (unused otherwise).
    random_state : int, default=0
        Seed of the projection and of the training set. The projection depends on
        the seed only, so that L(D, P) − L(P) compares one student across D.

    Returns
    -------
    (float, float)
        (L, reference): the loss and the subtracted limit (L(P), L(D) or 0).

    Examples
    --------
    >>> pop = power_law_population(256, 1.0)
    >>> loss, ref = regime_point(pop, "variance_D", 128, fixed=8)
    >>> bool(loss > ref > 0)
    True
    """
    check_choice(regime, "regime", "regime_point", tuple(REGIMES))
    check_int(size, "size", "regime_point", 1)
    S = population.n_features
    lam = population.eigenvalues
    projection_rng = np.random.default_rng([random_state, 0])
    sample_rng = np.random.default_rng([random_state, 1, size])
    if regime == "resolution_D":
        return linear_model_loss(population.sample(size, sample_rng), lam), 0.0
    if regime == "resolution_P":
        return infinite_data_loss(lam, gaussian_projection(size, S, projection_rng)), 0.0
    if fixed is None:
        raise ValueError(f"regime_point: the {regime} regime needs fixed= (the "
                         f"{'P' if regime == 'variance_D' else 'D'} held fixed).")
    check_int(fixed, "fixed", "regime_point", 1)
    if regime == "variance_D":
        R = gaussian_projection(fixed, S, projection_rng)
        X = population.sample(size, sample_rng)
        return linear_model_loss(X, lam, projection=R), infinite_data_loss(lam, R)
    X = population.sample(fixed, np.random.default_rng([random_state, 1]))
    R = gaussian_projection(size, S, np.random.default_rng([random_state, 2, size]))
    return linear_model_loss(X, lam, projection=R), linear_model_loss(X, lam)


@dataclass(frozen=True)
class SweepRow:
    """One finished point of a sweep: a source, a regime, a size and a seed."""

    source: str
    regime: str
    fixed: int
    size: int
    seed: int
    loss: float
    reference: float

    @property
    def excess(self) -> float:
        """L minus the subtracted limit: the quantity whose exponent is fitted."""
        return self.loss - self.reference

    @property
    def key(self) -> tuple[str, str, int, int, int]:
        return self.source, self.regime, self.fixed, self.size, self.seed


_PARSERS = {"int": int, "float": float, "str": str}


class SweepCache:
    """Finished sweep points in a CSV (:class:`idest.utils.RecordStore`), appended as they finish.

    A point cut short by an interruption is dropped (with a warning) and recomputed.

    Parameters
    ----------
    path : str or Path
        The CSV; created with a header on the first point, read if present.
    row_type : dataclass type, default=SweepRow
        The rows stored (fields of type int, float or str, and a ``key`` property).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "points.csv")
    >>> cache = SweepCache(path)
    >>> cache.add(SweepRow("s", "resolution_D", 0, 8, 0, 0.5, 0.0))
    >>> SweepCache(path).get(("s", "resolution_D", 0, 8, 0)).loss
    0.5
    """

    def __init__(self, path: str | Path, row_type: type = SweepRow):
        self.path = Path(path)
        self.row_type = row_type
        self._fields = fields(row_type)
        names = [f.name for f in self._fields]
        key = [name for name in names if name in _key_fields(row_type)]
        self._store = RecordStore(self.path, names, key, owner="SweepCache",
                                  parsers={f.name: _PARSERS[f.type] for f in self._fields})
        self._rows: dict[tuple, object] = {}
        self.n_added = 0                 # rows computed (not read back) by this process
        for record in self._store.read():
            row = row_type(*(_PARSERS[f.type](record[f.name]) for f in self._fields))
            self._rows[row.key] = row

    def get(self, key: tuple) -> object | None:
        """The finished row with this key, or None."""
        return self._rows.get(key)

    def add(self, row: object) -> None:
        """Record a finished row (appended to the CSV and fsynced at once)."""
        self._store.append([{name: repr(float(v)) if isinstance(v, float) else v
                             for name, v in asdict(row).items()}])
        self._rows[row.key] = row
        self.n_added += 1


def _key_fields(row_type: type) -> set[str]:
    """The fields that make up ``row_type.key`` (found by giving each field its own value)."""
    values = {f.name: _PARSERS[f.type](str(i)) for i, f in enumerate(fields(row_type))}
    key = row_type(**values).key
    return {name for name, value in values.items() if value in key}


def _regime_row(source: FeatureSource, regime: str, size: int, fixed: int | None,
                seed: int) -> SweepRow:
    """One point of :func:`sweep_regime` (seed s: the population of seed s)."""
    loss, reference = regime_point(source.population(seed), regime, size, fixed=fixed,
                                   random_state=seed)
    return SweepRow(source.name, regime, 0 if fixed is None else int(fixed), size, seed, loss,
                    reference)


def sweep_regime(source: FeatureSource, regime: str, sizes: Iterable[int], *,
                 fixed: int | None = None, seeds: Sequence[int] = (0, 1, 2, 3),
                 cache: SweepCache | None = None, progress: bool | None = None,
                 client: Any = None) -> list[SweepRow]:
    """Every (size, seed) point of one regime, reusing finished points from ``cache``.

    Seed s uses the population of seed s (its own inputs and network) and its own
    projection and training sets. With a Dask ``client`` the missing points are
    computed on the cluster (one task each, consumed as they finish) and this
    process adds each to ``cache``.

    Examples
    --------
    >>> rows = sweep_regime(FeatureSource("power_law", 1.0, n_features=128),
    ...                     "resolution_P", [4, 8, 16], seeds=[0, 1], progress=False)
    >>> len(rows), all(r.excess > 0 for r in rows)
    (6, True)
    """
    sizes = [int(s) for s in sizes]
    todo = [(size, seed) for seed in seeds for size in sizes]
    fixed_key = 0 if fixed is None else int(fixed)
    found = {}
    for size, seed in todo if cache is not None else ():
        row = cache.get((source.name, regime, fixed_key, size, seed))
        if row is not None:
            found[size, seed] = row
    missing = [point for point in todo if point not in found]
    with progress_bar(progress, total=len(todo), desc=f"{source.name[:28]} {regime}",
                      unit="pt") as bar:
        def finish(row: SweepRow) -> None:
            found[row.size, row.seed] = row
            if cache is not None:
                cache.add(row)
            if bar is not None:
                bar.update()

        if bar is not None:
            bar.update(len(todo) - len(missing))
        if client is None:
            for size, seed in missing:
                finish(_regime_row(source, regime, size, fixed, seed))
        else:
            points = [(source, regime, size, fixed, seed) for size, seed in missing]
            with as_completed_units(client, _regime_row, points,
                                    caller="sweep_regime") as finished:
                for _, row in finished:
                    finish(row)
    return [found[point] for point in todo]


def fit_regime(rows: Sequence[SweepRow], *, window: str | tuple[float, float] = "all",
               n_bootstrap: int = 1000, random_state: int = 0) -> PowerLawFit:
    """Fit L ∝ size^−α to the excess losses of a sweep (bootstrap over seeds within each size).

    Sizes where a seed's excess is not positive (a variance-limited difference
    lost in round-off) are left out, since a power law is fitted in log L.

    Examples
    --------
    >>> rows = sweep_regime(FeatureSource("power_law", 1.0, n_features=512),
    ...                     "resolution_P", [8, 16, 32, 64], seeds=[0, 1], progress=False)
    >>> round(fit_regime(rows, n_bootstrap=0).alpha, 1)
    1.0
    """
    bad = {r.size for r in rows if not r.excess > 0}
    kept = [r for r in rows if r.size not in bad]
    return fit_power_law([r.size for r in kept], [r.excess for r in kept],
                         seeds=[r.seed for r in kept], window=window,
                         n_bootstrap=n_bootstrap, random_state=random_state)


@dataclass(frozen=True)
class SpectrumFit:
    """α_K from a fit λ_i ∝ i^−(1+α_K) of the feature spectrum (Bahri eq. 6, figure 4)."""

    alpha_K: float
    interval: tuple[float, float]
    confidence: float
    fit: PowerLawFit

    def to_dict(self) -> dict[str, Any]:
        """α_K, its interval and the underlying fit as a JSON-ready dict."""
        return {"alpha_K": self.alpha_K, "interval": list(self.interval),
                "confidence": self.confidence, "fit": self.fit.to_dict()}


def fit_spectrum(eigenvalue_sets: Sequence[np.ndarray], *, window: tuple[float, float],
                 n_bootstrap: int = 1000, random_state: int = 0) -> SpectrumFit:
    """Fit α_K over the indices i in ``window``; one eigenvalue set per seed.

    The interval is a bootstrap over the seeds' spectra within each index.

    Examples
    --------
    >>> lam = power_law_population(1000, 0.5).eigenvalues
    >>> round(fit_spectrum([lam], window=(10, 100), n_bootstrap=0).alpha_K, 6)
    0.5
    """
    index = np.concatenate([np.arange(1, len(lam) + 1) for lam in eigenvalue_sets])
    values = np.concatenate([np.asarray(lam, dtype=float) for lam in eigenvalue_sets])
    seeds = np.concatenate([np.full(len(lam), s) for s, lam in enumerate(eigenvalue_sets)])
    positive = values > 0
    fit = fit_power_law(index[positive], values[positive], seeds=seeds[positive],
                        window=window, n_bootstrap=n_bootstrap, random_state=random_state)
    low, high = fit.interval
    return SpectrumFit(fit.alpha - 1.0, (low - 1.0, high - 1.0), fit.confidence, fit)


@dataclass(frozen=True)
class DualityCheck:
    """α_D (resolution-limited, over D) against α_P (over P) and α_K (spectrum).

    ``consistent`` is True when the 95 % intervals of α_D and α_P overlap.
    """

    alpha_D: float
    alpha_D_interval: tuple[float, float]
    alpha_P: float
    alpha_P_interval: tuple[float, float]
    alpha_K: float
    alpha_K_interval: tuple[float, float]

    @property
    def consistent(self) -> bool:
        """Whether the intervals of α_D and α_P overlap."""
        (a, b), (c, d) = self.alpha_D_interval, self.alpha_P_interval
        return bool(a <= d and c <= b)


def duality_check(fit_D: PowerLawFit, fit_P: PowerLawFit, spectrum: SpectrumFit
                  ) -> DualityCheck:
    """Collect α_D, α_P and α_K with their intervals (Bahri eq. 7: α_D = α_P = α_K).

    Examples
    --------
    >>> src = FeatureSource("power_law", 1.0, n_features=512)
    >>> D = fit_regime(sweep_regime(src, "resolution_D", [8, 16, 32], progress=False))
    >>> P = fit_regime(sweep_regime(src, "resolution_P", [8, 16, 32], progress=False))
    >>> K = fit_spectrum([src.population(0).eigenvalues], window=(8, 32))
    >>> check = duality_check(D, P, K)
    >>> abs(check.alpha_D - check.alpha_P) < 0.1
    True
    """
    return DualityCheck(fit_D.alpha, fit_D.interval, fit_P.alpha, fit_P.interval,
                        spectrum.alpha_K, spectrum.interval)
