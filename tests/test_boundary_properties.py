"""The public boundary under random abuse (hypothesis): every draw of shape, dtype, scale,
duplicates, near-duplicates, memory layout and input type either raises a ValueError or
TypeError whose message names the function, or returns finite results equal to the float64
reference computed on the de-duplicated data.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import idest
from scaling.fit import fit_power_law

boundary = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

DTYPES = ("float64", "float32", "float16", "int32", "bool")
LAYOUTS = ("C", "F", "strided", "reversed", "list", "torch")


def present(X, layout):
    """The same values in another memory layout or container."""
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "strided":
        wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
        wide[:, ::2] = X
        return wide[:, ::2]
    if layout == "reversed":
        return np.ascontiguousarray(X[::-1])[::-1]
    if layout == "list":
        return X.tolist()
    if layout == "torch":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(np.ascontiguousarray(X)) if X.dtype != np.float16 else \
            torch.from_numpy(X.astype(np.float32)).to(torch.float16)
    return np.ascontiguousarray(X)


@st.composite
def datasets(draw, min_points=2, max_points=40):
    """(input, base, layout): an input built from distinct float64 ``base`` rows by adding exact
    copies and one-ulp twins (at the input dtype's precision), scaled by a power of two."""
    n = draw(st.integers(min_points, max_points))
    d = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        base = np.unique(rng.random((n, d)) < 0.5, axis=0).astype(np.float64)
    elif dtype == "int32":
        base = np.unique(rng.integers(-50, 50, (n, d)), axis=0).astype(np.float64)
    else:
        exponent = draw(st.sampled_from([0, 0, -12, 12] + ([-990, -500, 500, 990]
                                                          if dtype == "float64" else [])))
        base = np.unique(rng.normal(size=(n, d)).astype(dtype).astype(np.float64), axis=0)
        base = np.ldexp(base, exponent) if dtype == "float64" else base
    base = distinct_at_precision(base, dtype)
    values = base.astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    extra = []
    n_copies = draw(st.integers(0, len(base)))
    extra.append(values[rng.integers(0, len(base), n_copies)])
    # (a list holds Python floats: its precision is float64's, whatever made the values)
    if dtype.startswith("float") and (layout != "list" or dtype == "float64"):
        n_twins = draw(st.integers(0, len(base)))
        twins = values[rng.integers(0, len(base), n_twins)].copy()
        twins = np.nextafter(twins, np.array(np.inf, dtype))
        extra.append(twins)
    X = np.concatenate([values, *extra]) if extra else values
    return X, base, layout


def distinct_at_precision(base, dtype):
    """The rows of ``base`` farther than the estimators' duplicate threshold from every
    earlier kept row (4 machine epsilons of the dtype times the larger norm), with a margin
    of 2 more for the one-ulp twins: a twin of A within the threshold of B would join A and
    B into one group (duplicate groups are connected components), and then ``base`` would
    no longer be the distinct points the estimators must see."""
    if np.dtype(dtype).kind != "f":
        return base
    eps = (4 + 2) * np.finfo(dtype).eps
    distance = exact_distances(base, base)
    exponents = np.frexp(np.abs(base).max(axis=1))[1]  # row norms without overflow
    norms = np.ldexp(np.linalg.norm(np.ldexp(base, -exponents[:, None]), axis=1), exponents)
    keep = []
    for i in range(len(base)):
        if all(distance[i, j] > eps * max(norms[i], norms[j]) for j in keep):
            keep.append(i)
    return base[keep]


def names_the_problem(exc, caller):
    message = str(exc)
    assert message.startswith(f"{caller}") or caller in message, message
    assert len(message) > 20, message


def exact_distances(A, B):
    """float64 Euclidean distances from direct differences, on power-of-two rescaled data."""
    top = max(np.abs(A).max(), np.abs(B).max(), 1e-300)
    exponent = int(np.frexp(top)[1])
    a, b = np.ldexp(A, -exponent), np.ldexp(B, -exponent)
    return np.ldexp(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)), exponent)


@boundary
@given(datasets(), st.integers(-1, 45),
       st.sampled_from(["auto", "cpp", "numba", "tree", "torch"]))
def test_knn_is_exact_or_refuses(data, k, backend):
    X, _, layout = data
    given_input = present(X, layout)
    try:
        nn = idest.knn(given_input, k, backend=backend)
    except (ValueError, TypeError) as exc:
        names_the_problem(exc, "knn")
        assert k < 1 or k >= len(X), exc  # refused only for an impossible k
        return
    X64 = np.asarray(X, dtype=np.float64)
    reference = exact_distances(X64, X64)
    np.fill_diagonal(reference, np.inf)
    expected = np.sort(reference, axis=1)[:, :k]
    assert np.isfinite(nn.distances).all() and nn.distances.dtype == np.float64
    np.testing.assert_allclose(nn.distances, expected, rtol=1e-12, atol=0)
    rows = np.arange(len(X))[:, None]
    np.testing.assert_allclose(reference[rows, nn.indices], nn.distances, rtol=1e-12, atol=0)
    assert (nn.indices != rows).all()


ESTIMATORS = {
    "twonn": lambda X: idest.twonn(X),
    "knn_cdf": lambda X: idest.knn_cdf(X, 3),
    "mle": lambda X: idest.mle(X, 5),
}


@boundary
@given(datasets(min_points=2, max_points=60), st.sampled_from(list(ESTIMATORS)))
def test_estimators_equal_the_deduplicated_reference_or_refuse(data, name):
    X, base, layout = data
    estimate = ESTIMATORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", idest.DuplicatesWarning)
        try:
            result = estimate(present(X, layout))
        except (ValueError, TypeError) as exc:
            names_the_problem(exc, name)
            with pytest.raises(ValueError):  # refused only when the distinct points refuse too
                estimate(base)
            return
        reference = estimate(np.ldexp(base, -int(np.frexp(np.abs(base).max() or 1)[1])))
    assert np.isfinite(result.dimension)
    assert result.n_points == len(base)
    assert result.dimension == pytest.approx(reference.dimension, rel=1e-9)
    assert result.n_duplicates_dropped == len(X) - len(base)


@boundary
@given(st.lists(st.floats(1.0, 1e12), min_size=0, max_size=12),
       st.floats(0.05, 2.0), st.floats(1e-300, 1e300),
       st.sampled_from(["none", "negative", "nan", "inf", "zero"]),
       st.sampled_from([0, 1, 2, 20, -1]), st.sampled_from(["all", "circle"]))
def test_fit_power_law_recovers_alpha_or_refuses(sizes, alpha, coefficient, damage, n_bootstrap,
                                                window):
    N = np.asarray(sizes, dtype=float)
    with np.errstate(all="ignore"):
        L = coefficient * N ** -alpha
    if damage != "none" and L.size:
        L[0] = {"negative": -1.0, "nan": np.nan, "inf": np.inf, "zero": 0.0}[damage]
    try:
        fit = fit_power_law(N, L, window=window, n_bootstrap=n_bootstrap)
    except (ValueError, TypeError) as exc:
        names_the_problem(exc, "fit_power_law" if "circle_window" not in str(exc)
                          else "circle_window")
        return
    assert damage == "none" and n_bootstrap not in (1, -1)
    assert np.isfinite(fit.alpha)
    if len(np.unique(N)) >= 2 and np.all(np.isfinite(L)) and np.all(L > 0):
        assert fit.alpha == pytest.approx(alpha, rel=1e-6, abs=1e-9)
