"""Input validation at the boundary: one helper for every public entry point.

Modelled on scikit-learn's ``check_array``: the array must be 2-D, non-empty,
numeric and finite; float32 stays float32, float64 stays float64, other numeric
dtypes are converted (integers and bool to float64, float16 to float32).
numpy arrays, ``numpy.memmap`` and CPU torch tensors are accepted without
copying when they already have a supported dtype and contiguous rows.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from idest.utils.blocks import row_blocks


def _from_torch(X: Any) -> np.ndarray | None:
    """A numpy view of a CPU torch tensor (None if X is not a tensor)."""
    module = type(X).__module__
    if not module.startswith("torch"):
        return None
    import torch

    if not isinstance(X, torch.Tensor):
        return None
    if X.device.type != "cpu":
        raise ValueError(
            f"Expected a CPU tensor, got one on device '{X.device}'; call .cpu() first."
        )
    X = X.detach().resolve_neg().resolve_conj()  # lazy views numpy cannot read
    if X.dtype in (torch.bfloat16,):
        X = X.float()  # numpy has no bfloat16: one upcast copy
    return X.numpy()


def check_array(
    X: Any,
    *,
    name: str = "X",
    caller: str = "idest",
    min_samples: int = 1,
    copy: bool = False,
) -> np.ndarray:
    """Validate a 2-D array of samples and return it as float32 or float64.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        numpy array, ``numpy.memmap``, CPU ``torch.Tensor`` or nested sequence.
    name : str, default="X"
        Name used in error messages.
    caller : str, default="idest"
        The function or class named in error messages.
    min_samples : int, default=1
        Minimum number of rows required by the caller.
    copy : bool, default=False
        Force a copy even when the input could be used as is.

    Returns
    -------
    ndarray of shape (n_samples, n_features), dtype float32 or float64
        A view of the input whenever possible.

    Raises
    ------
    ValueError
        Wrong number of dimensions, empty input, non-numeric dtype, too few
        rows, or a non-finite value (the message names the first bad row).
    """
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise ValueError(f"{caller}: sparse input is not supported for {name}; "
                         "convert it with X.toarray().")
    arr = _from_torch(X)
    if arr is None:
        if isinstance(X, np.ndarray):
            arr = X
        else:
            try:
                arr = np.asarray(X)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{caller}: {name} could not be read as an array: {exc}") from exc
    if arr.dtype.kind == "c":
        raise ValueError(f"{caller}: Complex data not supported in {name}; pass real values.")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{caller}: {name} must hold real numbers, got dtype object that "
                             f"cannot be converted to float: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{caller}: {name} must hold real numbers, got dtype {arr.dtype}; "
            "convert it with np.asarray(X, dtype=float)."
        )
    if arr.ndim != 2:
        hint = " Reshape a single feature with X.reshape(-1, 1)." if arr.ndim == 1 else ""
        raise ValueError(f"{caller}: expected a 2-D array for {name}, got {arr.ndim}-D "
                         f"with shape {arr.shape}.{hint}")
    for axis, what in ((0, "sample"), (1, "feature")):
        if arr.shape[axis] == 0:
            raise ValueError(f"{caller}: {name} is empty: found 0 {what}(s) (shape={arr.shape}) "
                             "while a minimum of 1 is required.")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{caller}: found {arr.shape[0]} sample(s) in {name} (shape={arr.shape}) "
            f"while a minimum of {min_samples} is required."
        )
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)  # long double
    if (arr.shape[1] > 1 and arr.strides[1] != arr.itemsize or arr.strides[0] < 0
            or arr.strides[0] % arr.itemsize):
        arr = np.ascontiguousarray(arr)
    elif copy:
        arr = np.array(arr)
    check_finite(arr, name=name, caller=caller)
    return arr


def check_finite(arr: np.ndarray, *, name: str = "X", caller: str = "idest") -> None:
    """Raise ValueError naming the first row that holds nan or inf.

    Works in chunks of rows so that a memmap larger than memory is never loaded
    at once.
    """
    for start, chunk in row_blocks(arr):
        ok = np.isfinite(chunk).all(axis=1)
        if not ok.all():
            row = start + int(np.argmin(ok))
            bad = chunk[row - start]
            kind = "NaN (nan)" if np.isnan(bad).any() else "infinity (inf)"
            raise ValueError(
                f"{caller}: {name} contains {kind}, first in row {row}; "
                "remove or impute non-finite values first."
            )


def check_int(value: Any, name: str, caller: str, low: int, high: float = np.inf) -> int:
    """An int in [low, high], or a ValueError in scikit-learn's words."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or not low <= value <= high:
        upper = "inf)" if high == np.inf else f"{int(high)}]"
        raise ValueError(
            f"The '{name}' parameter of {caller} must be an int in the range [{low}, {upper}. "
            f"Got {value!r} instead."
        )
    return int(value)


def check_fraction(caller: str, name: str, value: Any) -> float:
    """A number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, float | int) or not 0 <= value < 1:
        raise ValueError(f"{caller}: {name} must be a number in [0, 1), e.g. 0.1; got {value!r}.")
    return float(value)


def check_choice(caller: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{caller}: {name} must be one of {', '.join(map(repr, choices))}; "
                         f"got {value!r}.")
    return value


def check_random_state(random_state: Any, caller: str = "idest") -> np.random.Generator:
    """A numpy Generator from an int seed, a Generator (used as is) or None (fresh entropy).

    Examples
    --------
    >>> check_random_state(0).integers(10) == check_random_state(0).integers(10)
    True
    >>> g = np.random.default_rng(1)
    >>> check_random_state(g) is g
    True
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return np.random.default_rng(int(random_state))
    raise ValueError(f"The 'random_state' parameter of {caller} must be a non-negative int, a "
                     f"numpy.random.Generator or None. Got {random_state!r} instead.")
