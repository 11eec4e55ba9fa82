"""Content hashes: the keys under which resumable results are stored.

A stored result may be reused only if everything it depends on is unchanged,
so the key of a result holds a hash of its inputs' *content* (the text, the
token ids, the model's weights, the batches), never only their names or shapes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Bytes hashed per call to the hash object (bounds the temporary copies of large arrays).
_BLOCK_BYTES = 1 << 24


def content_hash(value: Any) -> str:
    """A SHA-256 hex digest of a value's content, stable across runs and machines.

    Handles, recursively: ``None``, bool, int, float, str, bytes, ``Path`` (its
    name, not the file), numpy arrays and scalars (dtype, shape and bytes, in C
    order, whatever the memory layout), torch tensors (moved to the CPU;
    bfloat16 included), torch modules (every tensor of ``state_dict()``, that is
    the weights and buffers, with their names), mappings (sorted by key) and
    sequences / iterables (in order). Two values of different types never
    share a hash (``1`` and ``1.0`` and ``"1"`` differ).

    Parameters
    ----------
    value : object

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import numpy as np
    >>> content_hash(np.arange(3)) == content_hash(np.arange(3))
    True
    >>> content_hash(np.arange(3)) == content_hash(np.arange(3.0))
    False
    >>> content_hash({"b": 1, "a": [1, 2]}) == content_hash({"a": [1, 2], "b": 1})
    True
    """
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> None:
    def tag(name: str, extra: Any = "") -> None:
        digest.update(f"\x00{name}:{extra}\x00".encode())

    torch = sys.modules.get("torch")
    if value is None or isinstance(value, (bool, int, float, str, complex)):
        tag(type(value).__name__, repr(value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        tag("bytes", len(value))
        digest.update(value)
    elif isinstance(value, Path):
        tag("path", str(value))
    elif isinstance(value, (np.ndarray, np.generic)):
        _update_array(digest, tag, np.asarray(value))
    elif torch is not None and isinstance(value, torch.Tensor):
        _update_tensor(digest, tag, value, torch)
    elif torch is not None and isinstance(value, torch.nn.Module):
        state = value.state_dict()
        tag("module", f"{type(value).__name__}:{len(state)}")
        for name, tensor in state.items():
            tag("entry", name)
            _update(digest, tensor)
    elif isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: json.dumps(kv[0], default=repr))
        tag("mapping", len(items))
        for key, item in items:
            _update(digest, key)
            _update(digest, item)
    elif isinstance(value, (set, frozenset)):
        tag("set", len(value))
        for item in sorted(value, key=repr):
            _update(digest, item)
    elif hasattr(value, "__iter__"):
        tag("sequence")
        n = 0
        for item in value:
            _update(digest, item)
            n += 1
        tag("end", n)
    else:
        raise TypeError(f"content_hash: cannot hash a {type(value).__name__}; pass arrays, "
                        "tensors, modules, numbers, strings, mappings or sequences of them.")


def _update_array(digest: Any, tag: Any, arr: np.ndarray) -> None:
    if arr.dtype.kind == "O":
        tag("object-array", arr.shape)
        for item in arr.ravel():
            _update(digest, item)
        return
    tag("array", f"{arr.dtype.str}{arr.shape}")
    flat = arr.reshape(-1) if arr.flags.c_contiguous else None
    if flat is not None:
        data = flat.view(np.uint8) if flat.size else flat
        for start in range(0, data.nbytes, _BLOCK_BYTES):
            digest.update(memoryview(data[start:start + _BLOCK_BYTES]))
        return
    rows = max(1, _BLOCK_BYTES // max(1, arr.itemsize * (arr.size // max(1, len(arr)))))
    for start in range(0, len(arr), rows):  # layout-independent: hashed as C-order blocks
        digest.update(np.ascontiguousarray(arr[start:start + rows]).tobytes())


def _update_tensor(digest: Any, tag: Any, tensor: Any, torch: Any) -> None:
    tensor = tensor.detach()
    tag("tensor", f"{tensor.dtype}{tuple(tensor.shape)}")
    flat = tensor.to("cpu").contiguous().reshape(-1)
    if flat.numel():
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
