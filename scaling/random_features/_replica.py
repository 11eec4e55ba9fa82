"""The replica-theory learning curve of a linear feature model (Bahri et al. eq. S12).

Ridge-less, noise-free limit of Canatar, Bordelon & Pehlevan (2021), eq. 4: for a
kernel with eigenvalues λ_i and target coefficients w̄_i, the test loss after D
samples is

    L(D) = κ²/(1 − γ) Σ_i λ_i w̄_i² / (κ + Dλ_i)²,
    1 = Σ_i λ_i / (κ + Dλ_i),      γ = Σ_i Dλ_i² / (κ + Dλ_i)²,

with κ found self-consistently. By the data/feature duality the same curve with
D → P describes L(P) at infinite data.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from idest.utils import check_int


def replica_kappa(eigenvalues: np.ndarray, n_samples: int) -> float:
    """κ solving 1 = Σ_i λ_i / (κ + Dλ_i) (eq. S12 at zero ridge), by Brent's method.

    A root exists while D is below the number of positive eigenvalues; at or above
    it the model interpolates the teacher exactly and κ = 0.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.arange(1, 1001) ** -2.0
    >>> k = replica_kappa(lam, 100)
    >>> round(float(np.sum(lam / (k + 100 * lam))), 9)
    1.0
    """
    check_int(n_samples, "n_samples", "replica_kappa", 1)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam = lam[lam > 0]
    if n_samples >= lam.size:
        return 0.0

    def excess(log_kappa: float) -> float:
        return float(np.sum(lam / (np.exp(log_kappa) + n_samples * lam))) - 1.0

    high = np.log(lam.sum())          # there Σ λ/(κ + Dλ) < Σλ/κ = 1
    low = high - 10.0
    while excess(low) <= 0:
        low -= 10.0
    return float(np.exp(optimize.brentq(excess, low, high, xtol=1e-12, rtol=1e-12)))


def replica_loss(eigenvalues: np.ndarray, n_samples: int,
                 target_weights_sq: np.ndarray | float | None = None) -> float:
    """The replica prediction of the test loss ½ E_x[(f − F)²] after D samples (eq. S12).

    Parameters
    ----------
    eigenvalues : ndarray of shape (S,)
        λ_i of the feature second-moment matrix.
    n_samples : int
        D (or P, by duality).
    target_weights_sq : float or ndarray of shape (S,), optional
        w̄_i²; the teacher–student average 1/S by default (Bahri D.1).

    Returns
    -------
    float
        Half of Canatar et al.'s generalisation error E_x[(f − F)²], so that it
        is on the scale of :func:`scaling.random_features.linear_model_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.arange(1, 20001) ** -2.0
    >>> ratio = replica_loss(lam, 100) / replica_loss(lam, 200)
    >>> round(float(np.log2(ratio)), 1)              # L ∝ D^(-α_K), α_K = 1
    1.0
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    w2 = np.full(lam.shape, 1.0 / lam.size) if target_weights_sq is None \
        else np.broadcast_to(np.asarray(target_weights_sq, dtype=np.float64), lam.shape)
    kappa = replica_kappa(lam, n_samples)
    if kappa == 0.0:
        return 0.0
    denominator = (kappa + n_samples * lam) ** 2
    gamma = float(np.sum(n_samples * lam**2 / denominator))
    return 0.5 * kappa**2 / (1.0 - gamma) * float(np.sum(lam * w2 / denominator))
