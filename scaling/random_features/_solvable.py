"""The solvable model of neural scaling laws (Maloney, Roberts & Sully 2022).

A generative data model with a latent space of finite size M: latent features
x ∈ R^M are Gaussian with a power-law spectrum λ_i = i^−(1+α) (their eq. 23),
labels are y = w·x + ε with w ~ N(0, I/M) and label noise ε ~ N(0, σ²); the model
sees N random features φ = U x (U an N×M Gaussian map, their linear random
feature model) and is fitted by ridge regression on T samples,
θ = argmin |Φθ − y|² + γ|θ|². The test loss ½ E[(θ·φ − w·x)²] (the excess over
the noise floor) is exact in the average over w and ε
(:func:`scaling.random_features.linear_model_loss`); averages over U and the
training set are over seeds.

It is the random-feature model of Bahri et al. with a finite pool S = M of
Gaussian features: the loss falls as N^−α and T^−α while N, T ≪ M, and breaks
down as N or T reaches M.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idest.utils import as_completed_units, check_choice, check_int, progress_bar
from scaling.random_features._features import (
    gaussian_projection,
    linear_model_loss,
    power_law_population,
)
from scaling.random_features._regimes import SweepCache


def solvable_loss(n_latent: int, n_features: int, n_train: int, *, alpha: float = 1.0,
                  ridge: float | Sequence[float] = 0.0, noise: float = 0.0,
                  random_state: int = 0) -> float | np.ndarray:
    """Test loss of one draw of the solvable model (Maloney et al. sections 2–3).

    Parameters
    ----------
    n_latent : int
        M, the size of the latent space.
    n_features : int
        N, the number of random features (parameters).
    n_train : int
        T, the training-set size.
    alpha : float, default=1.0
        The latent spectrum is λ_i = i^−(1+α); the loss scales as N^−α, T^−α.
    ridge : float or sequence of float, default=0.0
        γ (0: the ridge-less, minimum-norm fit); a sequence gives one loss each.
        γ is on the scale of a feature map with unit-variance entries.
    noise : float, default=0.0
        Label-noise variance σ².
    random_state : int, default=0
        Seed of the feature map U and of the training set.

    Returns
    -------
    float or ndarray
        ½ E_{w, ε, x}[(θ·φ(x) − w·x)²].

    Examples
    --------
    >>> below = solvable_loss(64, 128, 32, random_state=0)
    >>> at_M = solvable_loss(64, 128, 64, random_state=0)     # T = M < N: exact recovery
    >>> bool(below > 1e-4 and at_M < 1e-12)
    True
    """
    check_int(n_latent, "n_latent", "solvable_loss", 1)
    check_int(n_features, "n_features", "solvable_loss", 1)
    check_int(n_train, "n_train", "solvable_loss", 1)
    population = power_law_population(n_latent, alpha)
    U = gaussian_projection(n_features, n_latent, np.random.default_rng([random_state, 0]))
    X = population.sample(n_train, np.random.default_rng([random_state, 1, n_train]))
    return linear_model_loss(X, population.eigenvalues, projection=U, ridge=ridge, noise=noise)


@dataclass(frozen=True)
class SolvableRow:
    """One finished point of a solvable-model sweep at one ridge."""

    sweep: str
    n_features: int
    n_train: int
    seed: int
    ridge: float
    loss: float

    @property
    def key(self) -> tuple[str, int, int, int, float]:
        return self.sweep, self.n_features, self.n_train, self.seed, self.ridge


@dataclass(frozen=True)
class SolvableSweep:
    """Losses of a sweep over N or T, for every seed and ridge.

    Attributes
    ----------
    name : str
        Label of the sweep (also its cache key).
    varied : {"N", "T"}
        Which size varies.
    sizes : ndarray of shape (n_sizes,)
        The varied size.
    n_features, n_train : ndarray of shape (n_sizes,)
        N and T at each point.
    ridges : ndarray of shape (n_ridges,)
        γ/(N·T) at each column of ``losses``; ``ridges[0]`` is 0 (ridge-less).
    losses : ndarray of shape (n_seeds, n_sizes, n_ridges)
    """

    name: str
    varied: str
    sizes: np.ndarray
    n_features: np.ndarray
    n_train: np.ndarray
    ridges: np.ndarray
    losses: np.ndarray

    def ridgeless(self) -> np.ndarray:
        """Losses at γ = 0, shape (n_seeds, n_sizes)."""
        return self.losses[:, :, 0]

    def optimal_ridge(self) -> tuple[np.ndarray, np.ndarray]:
        """Losses at the γ that minimises the seed-averaged log loss at each size.

        Returns (losses of shape (n_seeds, n_sizes), chosen γ/(N·T) of shape (n_sizes,)).
        """
        mean_log = np.log(np.maximum(self.losses, np.finfo(float).tiny)).mean(axis=0)
        best = np.argmin(mean_log, axis=1)
        return self.losses[:, np.arange(self.sizes.size), best], self.ridges[best]


def _solvable_rows(n_latent: int, alpha: float, noise: float,
                   keys: list[tuple[str, int, int, int, float]]) -> list[SolvableRow]:
    """The rows of one (N, T, seed) point of :func:`solvable_sweep`, one per ridge of ``keys``."""
    _, N, T, seed, _ = keys[0]
    values = solvable_loss(n_latent, N, T, alpha=alpha, ridge=np.array([k[4] for k in keys]),
                           noise=noise, random_state=seed)
    return [SolvableRow(*k, float(v)) for k, v in zip(keys, values, strict=True)]


def solvable_sweep(n_latent: int, *, varied: str, sizes: Iterable[int], fixed: int,
                   alpha: float = 1.0, noise: float = 0.0,
                   relative_ridges: Sequence[float] = tuple(np.logspace(-12, 1, 27)),
                   seeds: Sequence[int] = (0, 1, 2, 3), cache: SweepCache | None = None,
                   progress: bool | None = None, client: Any = None) -> SolvableSweep:
    """Sweep N (at T = ``fixed``) or T (at N = ``fixed``) over ``sizes``, for γ = 0 and a grid.

    The ridge grid is γ = T·N·``relative_ridges`` (the scale of the largest
    eigenvalue of Φ^TΦ), so that the oracle-optimal γ (Maloney et al. γ*) can be
    read off at every point; finished points are kept in ``cache``. With a Dask
    ``client`` the missing points are computed on the cluster (one task per
    (N, T, seed)) and this process adds them to ``cache``.

    Examples
    --------
    >>> sw = solvable_sweep(32, varied="T", sizes=[4, 8, 16], fixed=64, seeds=[0, 1],
    ...                     progress=False)
    >>> sw.losses.shape, bool(np.all(np.diff(sw.ridgeless().mean(axis=0)) < 0))
    ((2, 3, 28), True)
    """
    check_choice(varied, "varied", "solvable_sweep", ("N", "T"))
    sizes = np.array([int(s) for s in sizes])
    n_features = sizes if varied == "N" else np.full(sizes.size, int(fixed))
    n_train = sizes if varied == "T" else np.full(sizes.size, int(fixed))
    name = (f"M={n_latent} alpha={alpha:g} noise={noise:g} vary {varied} "
            f"{'T' if varied == 'N' else 'N'}={fixed}")
    relative = np.asarray(relative_ridges, dtype=float)
    losses = np.empty((len(seeds), sizes.size, relative.size + 1))
    points = {}  # (i, j) -> the arguments of _solvable_rows
    for i, seed in enumerate(seeds):
        for j, (N, T) in enumerate(zip(n_features, n_train, strict=True)):
            ridges = np.concatenate([[0.0], N * T * relative])
            keys = [(name, int(N), int(T), int(seed), float(g)) for g in ridges]
            rows = [cache.get(k) for k in keys] if cache is not None else [None]
            if any(r is None for r in rows):
                points[i, j] = (n_latent, alpha, noise, keys)
            else:
                losses[i, j] = [r.loss for r in rows]
    with progress_bar(progress, total=losses.shape[0] * sizes.size, desc=name[:40],
                      unit="pt") as bar:
        def finish(i: int, j: int, rows: list[SolvableRow]) -> None:
            for row in rows if cache is not None else ():
                cache.add(row)
            losses[i, j] = [r.loss for r in rows]
            if bar is not None:
                bar.update()

        if bar is not None:
            bar.update(losses.shape[0] * sizes.size - len(points))
        if client is None:
            for (i, j), arguments in points.items():
                finish(i, j, _solvable_rows(*arguments))
        else:
            where = list(points)
            with as_completed_units(client, _solvable_rows, list(points.values()),
                                    caller="solvable_sweep") as finished:
                for unit, rows in finished:
                    finish(*where[unit], rows)
    return SolvableSweep(name, varied, sizes, n_features, n_train,
                         np.concatenate([[0.0], relative]), losses)
