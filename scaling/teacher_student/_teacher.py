"""Teacher networks that define a data manifold of known dimension (Sharma & Kaplan 3.1, A.2, A.3).

Teachers are plain NumPy (float32) so that ``import scaling`` never needs torch. Every
teacher exposes the same two methods used by training:

* ``sample_inputs(n, rng)``: ``n`` fresh inputs *as the student sees them*;
* ``outputs(x, dtype=np.float32)``: the teacher's output for those student inputs (two
  scaled logits for a teacher for the KL loss, one value for the others), computed in
  ``dtype``.

and the attributes ``n_inputs`` (width of a student's input), ``n_outputs``, ``loss``
(one of :data:`LOSSES`) and ``description`` (one line recorded with each run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from idest.utils import check_choice, check_int

#: The training losses: "kl" (cross-entropy on the teacher's soft labels, reported as the
#: KL divergence; the teacher has two logits), "mse" and "power" (|Δ|^p; one output).
LOSSES = ("kl", "mse", "power")
VARIANTS = ("authors", "clean")


def _relu_mlp(x: np.ndarray, weights: Sequence[np.ndarray], dtype=np.float32) -> np.ndarray:
    """Bias-free ReLU network: ReLU after every layer but the last, computed in ``dtype``
    (the weights are float32 numbers; float64 evaluates the same network more exactly)."""
    h = np.asarray(x, dtype=dtype)
    for W in weights[:-1]:
        h = np.maximum(h @ W.astype(dtype, copy=False), 0.0)
    return h @ weights[-1].astype(dtype, copy=False)


def _gaussian_layers(sizes: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Weights N(0, 1/fan_in) for consecutive layer sizes (Sharma & Kaplan A.2.1), float32."""
    return tuple(
        rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out)).astype(np.float32)
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)
    )


@dataclass(frozen=True, eq=False)
class RandomTeacher:
    """The random teacher of Sharma & Kaplan 3.1 / A.2: [20, 600, 600, 2 or 1].

    Zero biases, weights N(0, 1/fan_in), ReLU hidden layers, inputs uniform in
    [-1/2, 1/2]^20 of which only the first ``n_features`` (k) reach the network (a 0/1
    mask before the first layer). The output is multiplied by ``output_scale`` (6 in the
    authors' public code: softmax(6y) for cross-entropy, 6y for MSE).

    ``variant="authors"`` gives the student all ``n_total_inputs`` coordinates (the
    masked ones are pure distractors, as in the authors' code); ``variant="clean"``
    gives it only the k active ones. Both variants compute the same function of the
    active inputs. Build one with :func:`random_teacher`.
    """

    weights: tuple[np.ndarray, ...] = field(repr=False)
    n_features: int
    n_total_inputs: int
    loss: str
    variant: str
    output_scale: float
    seed: int

    @property
    def n_inputs(self) -> int:
        """Width of the student's input."""
        return self.n_total_inputs if self.variant == "authors" else self.n_features

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[1]

    @property
    def description(self) -> str:
        widths = [W.shape[0] for W in self.weights] + [self.n_outputs]
        return (f"random teacher {widths} k={self.n_features} loss={self.loss} "
                f"variant={self.variant} scale={self.output_scale:g} seed={self.seed}")

    def sample_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` fresh student inputs, uniform in [-1/2, 1/2]^n_inputs, float32."""
        return rng.random((n, self.n_inputs), dtype=np.float32) - np.float32(0.5)

    def outputs(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Scaled teacher output for student inputs ``x``, computed in ``dtype`` (float32
        for training labels, float64 for held-out losses); masked inputs are ignored."""
        active = np.ascontiguousarray(x[:, : self.n_features], dtype=dtype)
        first = self.weights[0][: self.n_features]  # the rows the 0/1 mask keeps
        return self.output_scale * _relu_mlp(active, (first, *self.weights[1:]), dtype)


def random_teacher(
    n_features: int,
    *,
    loss: str = "kl",
    variant: str = "authors",
    n_total_inputs: int = 20,
    hidden: Sequence[int] = (600, 600),
    output_scale: float = 6.0,
    random_state: int = 0,
) -> RandomTeacher:
    """A seeded random teacher with k = ``n_features`` active inputs (Sharma & Kaplan A.2).

    Parameters
    ----------
    n_features : int
        k, the number of active inputs (1 <= k <= n_total_inputs).
    loss : {"kl", "mse", "power"}, default="kl"
        The loss the students will be trained with (:data:`LOSSES`): two logits
        for "kl" ([20, 600, 600, 2]), one value for "mse" and "power".
    variant : {"authors", "clean"}, default="authors"
        Whether the student sees all ``n_total_inputs`` (authors' code) or only k.
    n_total_inputs, hidden, output_scale
        The architecture [n_total_inputs, *hidden, outputs] and the output multiplier.
    random_state : int, default=0
        Seed; the same seed always gives the same teacher.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student import random_teacher
    >>> t = random_teacher(5, random_state=1)
    >>> x = t.sample_inputs(3, np.random.default_rng(0))
    >>> x.shape, t.outputs(x).shape
    ((3, 20), (3, 2))
    """
    caller = "random_teacher"
    n_total_inputs = check_int(n_total_inputs, "n_total_inputs", caller, 1)
    n_features = check_int(n_features, "n_features", caller, 1, n_total_inputs)
    check_choice(loss, "loss", caller, LOSSES)
    check_choice(variant, "variant", caller, VARIANTS)
    n_out = 2 if loss == "kl" else 1
    rng = np.random.default_rng(random_state)
    weights = _gaussian_layers([n_total_inputs, *hidden, n_out], rng)
    return RandomTeacher(weights, n_features, n_total_inputs, loss, variant,
                         float(output_scale), int(random_state))


@dataclass(frozen=True, eq=False)
class ProductTeacher:
    """T(x) = Σ_i T_i(x_i) over disjoint input blocks (Sharma & Kaplan 3.2.1, eq. 3.3).

    The student sees the concatenation of the parts' inputs; the outputs (logits) add.
    The data manifold is the product of the parts', so its ID is Σ d_i while the theory
    predicts 4/α ≈ max d_i.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student import ProductTeacher, random_teacher
    >>> parts = [random_teacher(3, variant="clean", random_state=s) for s in (1, 2)]
    >>> t33 = ProductTeacher(tuple(parts))
    >>> t33.n_inputs, t33.outputs(t33.sample_inputs(4, np.random.default_rng(0))).shape
    (6, (4, 2))
    """

    parts: tuple

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise ValueError(f"ProductTeacher needs at least 2 parts, got {len(self.parts)}; "
                             f"use the single teacher directly.")
        kinds = {(p.loss, p.n_outputs) for p in self.parts}
        if len(kinds) != 1:
            raise ValueError(f"ProductTeacher parts must share one loss and output width, got "
                             f"{sorted(kinds)}; build every part with the same loss.")

    @property
    def loss(self) -> str:
        return self.parts[0].loss

    @property
    def n_outputs(self) -> int:
        return self.parts[0].n_outputs

    @property
    def n_inputs(self) -> int:
        return sum(p.n_inputs for p in self.parts)

    @property
    def description(self) -> str:
        return "product teacher T = " + " + ".join(f"[{p.description}]" for p in self.parts)

    def _blocks(self) -> list[slice]:
        edges = np.cumsum([0] + [p.n_inputs for p in self.parts])
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def sample_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([p.sample_inputs(n, rng) for p in self.parts], axis=1)

    def outputs(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        pairs = zip(self.parts, self._blocks(), strict=True)
        return sum(p.outputs(x[:, block], dtype) for p, block in pairs)


@dataclass(frozen=True, eq=False)
class LatentGaussianTeacher:
    """The tutorial's teacher [d → 9 → 600 → 600 → 1] (MSE, no biases).

    A latent t ~ N(0, I_d) is mapped linearly to the 9-dimensional data point x (the
    student's input); x then goes through two ReLU layers of 600 to one output. The data
    lie on a d-dimensional linear subspace of R^9. Build one with :func:`latent_gaussian_teacher`.
    """

    embedding: np.ndarray = field(repr=False)
    weights: tuple[np.ndarray, ...] = field(repr=False)
    latent_dim: int
    seed: int
    loss: str = "mse"

    @property
    def n_inputs(self) -> int:
        return self.embedding.shape[1]

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def description(self) -> str:
        return (f"latent Gaussian teacher [{self.latent_dim}, {self.n_inputs}, "
                f"{', '.join(str(W.shape[1]) for W in self.weights)}] seed={self.seed}")

    def sample_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        t = rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        return t @ self.embedding

    def outputs(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        return _relu_mlp(x, self.weights, dtype)


def latent_gaussian_teacher(
    latent_dim: int, *, data_dim: int = 9, hidden: Sequence[int] = (600, 600),
    random_state: int = 0,
) -> LatentGaussianTeacher:
    """The tutorial's seeded teacher: Gaussian latent in R^d, linear to R^9, [600, 600] ReLU, 1.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student import latent_gaussian_teacher
    >>> t = latent_gaussian_teacher(4, random_state=0)
    >>> x = t.sample_inputs(5, np.random.default_rng(0))
    >>> x.shape, np.linalg.matrix_rank(x), t.outputs(x).shape
    ((5, 9), 4, (5, 1))
    """
    caller = "latent_gaussian_teacher"
    data_dim = check_int(data_dim, "data_dim", caller, 1)
    latent_dim = check_int(latent_dim, "latent_dim", caller, 1, data_dim)
    rng = np.random.default_rng(random_state)
    (embedding,) = _gaussian_layers([latent_dim, data_dim], rng)
    weights = _gaussian_layers([data_dim, *hidden, 1], rng)
    return LatentGaussianTeacher(embedding, weights, latent_dim, int(random_state))


def _scalar_output(teacher, x: np.ndarray) -> np.ndarray:
    """One number per input: the logit difference (cross-entropy) or the value (MSE)."""
    y = teacher.outputs(x)
    return y[:, 0] - y[:, 1] if y.shape[1] == 2 else y[:, 0]


def vetting_score(
    teacher: RandomTeacher, *, n_trials: int = 200, n_points: int = 32, random_state: int = 0,
) -> float:
    """Mean R² of linear fits along random axis-aligned slices (Sharma & Kaplan A.3).

    For each trial and each active input axis, the other active coordinates are drawn
    uniformly from [-1/2, 1/2), the axis coordinate is swept over ``n_points`` uniform
    values, and a straight line is fitted to the teacher's output (logit difference for
    cross-entropy) along the slice. The score is the mean R² over axes and trials: low
    means non-linear. A slice on which the output is constant counts as linear (R² = 1).

    Examples
    --------
    >>> from scaling.teacher_student import random_teacher, vetting_score
    >>> 0.0 <= vetting_score(random_teacher(3), n_trials=5) <= 1.0
    True
    """
    rng = np.random.default_rng(random_state)
    k = teacher.n_features
    x = teacher.sample_inputs(n_trials * k * n_points, rng).reshape(n_trials, k, n_points, -1)
    sweep = x[:, :, :, 0].copy()  # reuse fresh uniforms as the swept coordinate
    base = x[:, :, :1, :]
    x = np.broadcast_to(base, x.shape).copy()
    for axis in range(k):
        x[:, axis, :, axis] = sweep[:, axis, :]
    y = _scalar_output(teacher, x.reshape(-1, x.shape[-1])).reshape(n_trials, k, n_points)
    s = sweep - sweep.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxy, sxx, syy = (s * yc).sum(-1), (s * s).sum(-1), (yc * yc).sum(-1)
    tiny = np.finfo(np.float32).eps * np.maximum(1.0, np.abs(y).max()) ** 2 * n_points
    r2 = np.where(syy > tiny, sxy**2 / (sxx * np.maximum(syy, tiny)), 1.0)
    return float(r2.mean())


def vetted_teacher(
    n_features: int, *, n_candidates: int = 5000, n_trials: int = 200, n_points: int = 32,
    random_state: int = 0, **teacher_options,
) -> tuple[RandomTeacher, float]:
    """The most non-linear of ``n_candidates`` random teachers (Sharma & Kaplan A.3).

    Candidate i is ``random_teacher(n_features, random_state=random_state + i, ...)``;
    the one with the lowest :func:`vetting_score` is returned with its score. The paper
    uses 5000 candidates and 200 trials (slow: pass fewer for a quick look).

    Examples
    --------
    >>> from scaling.teacher_student import vetted_teacher
    >>> t, score = vetted_teacher(3, n_candidates=3, n_trials=5, random_state=10)
    >>> t.seed in (10, 11, 12)
    True
    """
    caller = "vetted_teacher"
    n_candidates = check_int(n_candidates, "n_candidates", caller, 1)
    best, best_score = None, np.inf
    for i in range(n_candidates):
        candidate = random_teacher(n_features, random_state=random_state + i, **teacher_options)
        score = vetting_score(candidate, n_trials=n_trials, n_points=n_points,
                              random_state=random_state + i)
        if score < best_score:
            best, best_score = candidate, score
    return best, best_score
