"""Linear random-feature teacher/student models (Bahri et al. 2021, section 2.3, supplement D).

A pool of S features F(x) defines both models: the teacher is F(x) = Σ_M ω_M F_M(x)
with ω ~ N(0, 1/S), the student sees P features f = 𝒫 F (a random projection) and
is trained to the global optimum of the MSE from D samples (minimum-norm least
squares; a ridge is allowed for the solvable model). Everything that matters is
the second-moment matrix 𝒞 = E_x[F F^T] and the training features, so the test
loss is computed *exactly*, averaged over teachers, from them (eqs. 4, 5, S4, S5).

All computations work in the eigenbasis of 𝒞: the teacher distribution and the
Gaussian projection are rotation invariant, so rotating the features changes no
loss and turns every 𝒞 product into a scaling by the eigenvalues λ_i.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from idest.utils import check_array, check_int, check_positive

#: Singular values below this fraction of the largest count as zero (pseudo-inverse).
RCOND = 1e-7


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) \
        else np.random.default_rng(random_state)


class RandomReLUFeatures:
    """Features of a randomly initialised ReLU network, the pool F_M(x) of Bahri et al. 2.3.

    x → ReLU(x W_1 + b_1) → … → ReLU(h W_L + b_L), with weights N(0, 1/fan_in)
    and biases N(0, ``bias_std``²); the last hidden layer (width ``n_features`` = S)
    is the feature pool. Nothing is trained.

    Parameters
    ----------
    n_features : int, default=1024
        S, the width of the last ReLU layer.
    hidden : sequence of int, default=(256,)
        Widths of the ReLU layers before the last one.
    bias_std : float, default=1.0
        Standard deviation of the biases; 0 gives a bias-free (positively
        homogeneous) network whose features only see the direction of x.
    random_state : int, Generator or None, default=0
        Seed of the weights.

    Attributes
    ----------
    weights_ : list of ndarray
        Weight matrices, (fan_in, fan_out) each.
    biases_ : list of ndarray
        Bias vectors.
    n_features_in_ : int
        Input width seen by ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(100, 3))
    >>> RandomReLUFeatures(n_features=64, random_state=0).fit(X).transform(X).shape
    (100, 64)
    """

    def __init__(self, *, n_features: int = 1024, hidden: Sequence[int] = (256,),
                 bias_std: float = 1.0, random_state: int | np.random.Generator | None = 0):
        self.n_features = n_features
        self.hidden = hidden
        self.bias_std = bias_std
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> RandomReLUFeatures:
        """Draw the weights for inputs of X's width."""
        caller = "RandomReLUFeatures"
        X = check_array(X, caller=caller)
        check_int(self.n_features, "n_features", caller, 1)
        for width in self.hidden:
            check_int(width, "hidden width", caller, 1)
        if not self.bias_std >= 0:
            raise ValueError(f"{caller}: bias_std must be >= 0, got {self.bias_std!r}; "
                             "pass 0 for a bias-free network.")
        rng = _rng(self.random_state)
        sizes = [X.shape[1], *self.hidden, self.n_features]
        self.weights_ = [rng.normal(0.0, 1.0 / np.sqrt(a), size=(a, b))
                         for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.biases_ = [rng.normal(0.0, self.bias_std, size=b) for b in sizes[1:]]
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The S features of every row of X, float64 of shape (n_samples, n_features)."""
        X = check_array(X, caller="RandomReLUFeatures")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"RandomReLUFeatures: X has {X.shape[1]} columns but the network "
                             f"was fitted on {self.n_features_in_}; pass inputs of that width.")
        h = np.asarray(X, dtype=np.float64)
        for W, b in zip(self.weights_, self.biases_, strict=True):
            h = np.maximum(h @ W + b, 0.0)
        return h


@dataclass(frozen=True, eq=False)
class FeaturePopulation:
    """The input distribution seen through a feature pool, in the eigenbasis of 𝒞.

    Attributes
    ----------
    eigenvalues : ndarray of shape (S,)
        λ_i of the second-moment matrix 𝒞 = E_x[F F^T], descending.
    eigenvectors : ndarray of shape (S, S) or None
        Columns e_i (raw features → eigenbasis is ``F @ eigenvectors``); None
        when the features are Gaussian and diagonal by construction.
    pool : ndarray of shape (n_pool, S) or None
        Features of a finite population in the eigenbasis; the population *is*
        this pool (training sets are drawn from it with replacement, so every
        loss formula is exact for it). None for Gaussian features.
    description : str
        Where the features came from.
    """

    eigenvalues: np.ndarray = field(repr=False)
    eigenvectors: np.ndarray | None = field(repr=False)
    pool: np.ndarray | None = field(repr=False)
    description: str

    @property
    def n_features(self) -> int:
        """S, the size of the feature pool."""
        return self.eigenvalues.size

    def sample(self, n_samples: int, random_state: int | np.random.Generator | None = 0
               ) -> np.ndarray:
        """Features of ``n_samples`` i.i.d. inputs, in the eigenbasis, shape (n, S)."""
        check_int(n_samples, "n_samples", "FeaturePopulation.sample", 1)
        rng = _rng(random_state)
        if self.pool is None:
            return rng.normal(size=(n_samples, self.n_features)) * np.sqrt(self.eigenvalues)
        return self.pool[rng.integers(0, self.pool.shape[0], size=n_samples)]


def feature_population(features: np.ndarray, *, description: str = "features"
                       ) -> FeaturePopulation:
    """The population whose features are the rows of ``features`` (each row equally likely).

    Computes 𝒞 = F^T F / n (Bahri eq. S3) and rotates the pool into its eigenbasis.

    Parameters
    ----------
    features : ndarray of shape (n_pool, S)
        Feature vectors of the population's inputs.
    description : str, default="features"
        Recorded with the population.

    Returns
    -------
    FeaturePopulation

    Examples
    --------
    >>> import numpy as np
    >>> F = np.random.default_rng(0).normal(size=(500, 20)) * np.arange(20, 0, -1)
    >>> pop = feature_population(F)
    >>> bool(np.all(np.diff(pop.eigenvalues) <= 0)), pop.pool.shape
    (True, (500, 20))
    """
    F = np.asarray(check_array(features, name="features", caller="feature_population",
                               min_samples=2), dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(F.T @ F / F.shape[0])
    # Descending order; a contiguous copy, since BLAS skips negatively strided views.
    eigenvalues = np.ascontiguousarray(np.maximum(eigenvalues[::-1], 0.0))
    eigenvectors = np.ascontiguousarray(eigenvectors[:, ::-1])
    return FeaturePopulation(eigenvalues, eigenvectors, F @ eigenvectors, description)


def relu_feature_population(inputs: np.ndarray, *, n_features: int = 1024,
                            hidden: Sequence[int] = (256,), bias_std: float = 1.0,
                            random_state: int | np.random.Generator | None = 0,
                            description: str = "inputs") -> FeaturePopulation:
    """Random-ReLU features (:class:`RandomReLUFeatures`) of a population of inputs.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(400, 3))
    >>> relu_feature_population(X, n_features=32).n_features
    32
    """
    net = RandomReLUFeatures(n_features=n_features, hidden=hidden, bias_std=bias_std,
                             random_state=random_state).fit(inputs)
    return feature_population(
        net.transform(inputs),
        description=f"ReLU{[*hidden, n_features]} features (bias_std={bias_std:g}) of "
                    f"{description}")


def power_law_population(n_features: int, alpha_K: float) -> FeaturePopulation:
    """Gaussian features with the exact spectrum λ_i = i^−(1+α_K) (Bahri eq. 6).

    Examples
    --------
    >>> pop = power_law_population(4, 1.0)
    >>> pop.eigenvalues.tolist()
    [1.0, 0.25, 0.1111111111111111, 0.0625]
    """
    check_int(n_features, "n_features", "power_law_population", 1)
    check_positive(alpha_K, "alpha_K", "power_law_population")  # decays faster than 1/i
    eigenvalues = np.arange(1, n_features + 1, dtype=float) ** (-(1.0 + alpha_K))
    return FeaturePopulation(eigenvalues, None, None,
                             f"Gaussian features, spectrum i^-(1+{alpha_K:g}), S={n_features}")


def gaussian_projection(n_params: int, n_features: int,
                        random_state: int | np.random.Generator | None = 0) -> np.ndarray:
    """A P×S Gaussian projection 𝒫 in its reduced, equivalent form R (Bartlett decomposition).

    The student f = 𝒫 F with 𝒫 of i.i.d. N(0, 1) entries trains (min-norm or
    ridge) to the same predictor as the student R F, where 𝒫 = Q R is the QR
    decomposition, since Q is an isometry. R is upper trapezoidal of shape
    (min(P, S), S) with R_ii ~ χ(P − i + 1) and N(0, 1) above the diagonal, so it
    is drawn directly, at O(S·min(P, S)) cost even for P ≫ S.

    Examples
    --------
    >>> R = gaussian_projection(3, 5, random_state=0)
    >>> R.shape, bool(np.all(np.tril(R, -1) == 0))
    ((3, 5), True)
    """
    check_int(n_params, "n_params", "gaussian_projection", 1)
    check_int(n_features, "n_features", "gaussian_projection", 1)
    rng = _rng(random_state)
    rows = min(n_params, n_features)
    R = np.triu(rng.normal(size=(rows, n_features)), k=1)
    R[np.arange(rows), np.arange(rows)] = np.sqrt(rng.chisquare(n_params - np.arange(rows)))
    return R


def _spectral_factors(design: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD design = U diag(s) V^T through the eigenvectors of the smaller Gram matrix."""
    n, p = design.shape
    gram = design @ design.T if n <= p else design.T @ design
    s2, vecs = np.linalg.eigh(gram)
    keep = s2 > (RCOND**2) * max(s2[-1], 0.0)
    s = np.sqrt(s2[keep])
    vecs = vecs[:, keep]
    if n <= p:
        return vecs, s, design.T @ vecs / s
    return design @ vecs / s, s, vecs


def _compress_rows(X: np.ndarray) -> np.ndarray:
    """An S×S matrix X' with X'^T X' = X^T X: the same least-squares problem in S rows.

    Replacing the D training rows by X' (and the label noise by isotropic noise
    on S rows) changes neither Φ^T Φ nor the law of Φ^T y, hence no loss.
    """
    s2, vecs = np.linalg.eigh(X.T @ X)
    return (vecs * np.sqrt(np.maximum(s2, 0.0))).T


def linear_model_loss(train_features: np.ndarray, eigenvalues: np.ndarray, *,
                      projection: np.ndarray | None = None, ridge: float | Sequence[float] = 0.0,
                      noise: float = 0.0) -> float | np.ndarray:
    """Exact test loss of a trained linear student, averaged over teachers (Bahri S4/S5).

    Teacher y = ω·F(x) + ε with ω ~ N(0, I/S) and label noise ε ~ N(0, ``noise``);
    student f = R F with θ = argmin |Φθ − y|² + γ|θ|², Φ = X R^T (γ = 0: the
    minimum-norm least-squares solution, Moore–Penrose). Writing the learnt
    feature-space weights as β = R^T θ = B ω + (noise part),

        L = ½ E_x[(f − ω·F)²] = (1/2S) Tr[(B − I)^T Λ (B − I)] + (σ²/2) Tr[Λ N N^T],

    the teacher average of eq. S4 (valid for any D, P with pseudo-inverses) in
    the eigenbasis of 𝒞 = diag(Λ). The noise term is the excess over the noise floor.

    Parameters
    ----------
    train_features : ndarray of shape (D, S)
        Features of the training inputs in the eigenbasis of 𝒞.
    eigenvalues : ndarray of shape (S,)
        Eigenvalues λ_i of 𝒞.
    projection : ndarray of shape (P', S), optional
        The student's projection R (e.g. :func:`gaussian_projection`); None uses
        all S features (P → ∞ for a Gaussian projection).
    ridge : float or sequence of float, default=0.0
        γ; a sequence gives one loss per value (one factorisation serves all).
    noise : float, default=0.0
        Label-noise variance σ².

    Returns
    -------
    float or ndarray
        The loss (an array when ``ridge`` is a sequence).

    Examples
    --------
    >>> pop = power_law_population(200, 1.0)
    >>> X = pop.sample(50, random_state=0)
    >>> full = linear_model_loss(X, pop.eigenvalues)            # L(D=50), P = S
    >>> bool(0 < full < linear_model_loss(X[:10], pop.eigenvalues))
    True
    """
    caller = "linear_model_loss"
    X = np.asarray(check_array(train_features, name="train_features", caller=caller),
                   dtype=np.float64)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.shape != (X.shape[1],):
        raise ValueError(f"{caller}: eigenvalues must have one value per feature "
                         f"({X.shape[1]}), got shape {lam.shape}.")
    gammas = np.atleast_1d(np.asarray(ridge, dtype=np.float64))
    if np.any(gammas < 0) or not noise >= 0:
        raise ValueError(f"{caller}: ridge and noise must be >= 0, got ridge={ridge!r}, "
                         f"noise={noise!r}.")
    if projection is not None and projection.shape[1] != X.shape[1]:
        raise ValueError(f"{caller}: projection must have {X.shape[1]} columns (one per "
                         f"feature), got shape {projection.shape}.")
    n_params = X.shape[1] if projection is None else projection.shape[0]
    if X.shape[0] > X.shape[1] and 4 * n_params >= X.shape[1]:
        X = _compress_rows(X)           # cheaper when D > S and the student is not tiny
    design = X if projection is None else X @ projection.T
    left, s, right = _spectral_factors(design)            # design = left diag(s) right^T
    W_left = right if projection is None else projection.T @ right      # (S, r)
    W_right = left.T @ X                                                 # (r, S)
    shrink = s / (s**2 + gammas[:, None])                                 # (n_gamma, r)
    G1 = (W_left * lam[:, None]).T @ W_left
    overlap = np.einsum("ki,i,ik->k", W_right, lam, W_left)
    quadratic = np.einsum("gk,kl,gl->g", shrink, G1 * (W_right @ W_right.T), shrink)
    bias = (lam.sum() - 2.0 * shrink @ overlap + quadratic) / lam.size
    variance = noise * (shrink**2 @ np.diag(G1))
    loss = 0.5 * (bias + variance)
    return float(loss[0]) if np.ndim(ridge) == 0 else loss


def infinite_data_loss(eigenvalues: np.ndarray, projection: np.ndarray | None) -> float:
    """L(P) = lim_{D→∞} L(D, P) = (1/2S) Tr[𝒞 − 𝒞 R^T (R 𝒞 R^T)^+ R 𝒞] (Bahri eq. 4, S8).

    Examples
    --------
    >>> pop = power_law_population(100, 1.0)
    >>> infinite_data_loss(pop.eigenvalues, None)
    0.0
    >>> bool(infinite_data_loss(pop.eigenvalues, gaussian_projection(10, 100)) > 0)
    True
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if projection is None:
        return 0.0
    _, _, right = _spectral_factors(projection * np.sqrt(lam))   # row space of R Λ^(1/2)
    return 0.5 * float(lam.sum() - np.sum(lam[:, None] * right**2)) / lam.size


def sampled_test_loss(train_features: np.ndarray, test_features: np.ndarray, *,
                      projection: np.ndarray | None = None, n_teachers: int = 1,
                      random_state: int | np.random.Generator | None = 0) -> float:
    """Test loss of drawn teachers measured on fresh samples (Bahri eqs. 2, 3).

    Draws ``n_teachers`` teachers ω ~ N(0, I/S), trains the student R F of each to
    the minimum-norm least-squares solution on the training features
    (``scipy.linalg.lstsq``) and returns ½ mean (f(x) − F(x))² over the test
    features and the teachers. Its expectation is :func:`linear_model_loss`.

    Examples
    --------
    >>> pop = power_law_population(100, 1.0)
    >>> loss = sampled_test_loss(pop.sample(20, 0), pop.sample(5000, 1), n_teachers=50)
    >>> exact = linear_model_loss(pop.sample(20, 0), pop.eigenvalues)
    >>> bool(abs(loss / exact - 1) < 0.3)
    True
    """
    caller = "sampled_test_loss"
    X = check_array(train_features, name="train_features", caller=caller)
    Z = check_array(test_features, name="test_features", caller=caller)
    check_int(n_teachers, "n_teachers", caller, 1)
    if Z.shape[1] != X.shape[1]:
        raise ValueError(f"{caller}: test_features must have {X.shape[1]} columns like "
                         f"train_features, got {Z.shape[1]}.")
    S = X.shape[1]
    omega = _rng(random_state).normal(scale=1.0 / np.sqrt(S), size=(S, n_teachers))
    design = X if projection is None else X @ projection.T
    theta = linalg.lstsq(design, X @ omega, cond=RCOND)[0]
    learnt = theta if projection is None else projection.T @ theta
    return 0.5 * float(np.mean((Z @ (learnt - omega)) ** 2))
