"""Activation capture from PyTorch models: forward hooks, one pass, every site.

A *site* is a place in a model whose activations we want as vectors. Sites are
named two ways:

* by their ``named_modules()`` path (``"features.3"``, ``"transformer.h.0.mlp"``):
  the module's output (tuples unwrapped to their first element);
* for transformers, in the vocabulary of TransformerLens, through a
  per-architecture table (:data:`LAYOUTS`): ``embed``,
  ``blocks.{i}.hook_resid_pre``, ``blocks.{i}.hook_attn_out``,
  ``blocks.{i}.hook_resid_mid``, ``blocks.{i}.hook_mlp_out``,
  ``blocks.{i}.hook_resid_post``, ``ln_final``, plus ``hidden_states.{i}``,
  the HuggingFace ``output_hidden_states`` entries.

:func:`capture` runs one forward pass per batch (eval mode, ``torch.no_grad()``)
with a hook on every requested site, reduces each captured tensor per sample
(:class:`Reduction`) as soon as it is produced, upcasts it to float32 and
appends it to an in-memory list or, with ``out_dir``, to one ``.npy`` file per
site written in chunks through ``numpy.lib.format.open_memmap``, so that 10^6
vectors of width 768 never sit in RAM at once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idest.activations._hooks import hooks
from idest.activations._reductions import Reduction
from idest.activations._sites import Site, SiteSpec, _check_module, resolve_sites
from idest.activations._storage import _Checkpoint, _Sink
from idest.utils import check_int, content_hash, invalid, progress_bar


def _to_device(value: Any, device: Any) -> Any:
    import torch

    return value.to(device) if isinstance(value, torch.Tensor) else value


def _prepare(batch: Any, device: Any) -> tuple[tuple, dict, Any, int]:
    """Arguments for one model call, the batch's attention mask (or None) and its size.

    A mapping is passed as keyword arguments (HuggingFace style), a tuple or
    list gives its first element as the input (the (inputs, labels) of a
    DataLoader), anything else is passed as the single input.
    """
    if isinstance(batch, Mapping):
        kwargs = {k: _to_device(v, device) for k, v in batch.items()}
        sized = [v for v in kwargs.values() if hasattr(v, "shape")]
        if not sized:
            raise ValueError("A batch mapping must hold at least one tensor (e.g. input_ids); "
                             f"got keys {sorted(kwargs)}.")
        return (), kwargs, kwargs.get("attention_mask"), int(sized[0].shape[0])
    x = _to_device(batch[0] if isinstance(batch, (tuple, list)) and batch else batch, device)
    if not hasattr(x, "shape") or len(x.shape) == 0:
        raise TypeError(f"capture: a batch must be a tensor, a (inputs, ...) tuple or list, or a "
                        f"mapping of keyword tensors; got {type(batch).__name__} holding "
                        f"{type(x).__name__}. Pass batches of tensors with a leading batch "
                        "dimension.")
    return (x,), {}, None, int(x.shape[0])


@dataclass
class _BatchState:
    """What the hooks and the checkpoint share while the batches run."""

    first_size: int | None = None  # the first batch's size, known before its forward pass
    mask: Any = None  # the current batch's attention mask (None: every position counts)


def per_site(sites: Sequence[Site], reduce: str | Reduction | Mapping[str, str | Reduction]
              ) -> dict[str, Reduction]:
    """The Reduction of each site: one for all, or a mapping by name (default "last").

    Examples
    --------
    >>> from idest.activations import Site
    >>> sites = [Site("a", "a", False, "Linear", 0, 1), Site("b", "b", False, "Linear", 1, 1)]
    >>> {name: r.kind for name, r in per_site(sites, {"a": "mean"}).items()}
    {'a': 'mean', 'b': 'last'}"""
    if not isinstance(reduce, Mapping):
        return dict.fromkeys((s.name for s in sites), Reduction.parse(reduce))
    unknown = set(reduce) - {s.name for s in sites}
    if unknown:
        raise ValueError(f"reduce names sites that are not captured: {sorted(unknown)}; "
                         "use the names passed in sites.")
    return {s.name: Reduction.parse(reduce.get(s.name, "last")) for s in sites}


def capture(
    model: Any,
    batches: Iterable[Any],
    sites: SiteSpec,
    *,
    reduce: str | Reduction | Mapping[str, str | Reduction] = "last",
    out_dir: str | Path | None = None,
    chunk_rows: int = 8192,
    n_samples: int | None = None,
    resume_key: Any = None,
    progress: bool | None = None,
    keep_on_device: bool = False,
) -> dict[str, Any]:
    """Record activation vectors at every requested site, all in the same forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode for the capture (its training flag is restored after).
    batches : iterable
        Input batches: a tensor (``model(x)``), a tuple/list whose first element
        is the input (``model(batch[0])``, the (inputs, labels) of a DataLoader),
        or a mapping of keyword arguments (``model(**batch)``; an
        ``attention_mask`` entry is respected by the token reductions).
    sites : str, callable or sequence
        See :func:`resolve_sites`; :func:`list_sites` shows what exists.
    reduce : str, Reduction or mapping, default="last"
        The :class:`Reduction` of every site, or a mapping site name -> reduction.
    out_dir : str or Path, optional
        Write ``{site}.npy`` per site there (chunked, through ``open_memmap``)
        and return read-only memmaps; by default everything stays in memory.
    chunk_rows : int, default=8192
        Rows per in-memory block; with ``resume_key``, rows per site between
        two checkpoints.
    n_samples : int, optional
        Number of input samples, used to size the files up front (otherwise
        ``len(batches)`` times the first batch size; files grow as needed).
    resume_key : JSON-serialisable, optional
        With ``out_dir``: make the capture resumable. Every ``chunk_rows``
        rows the files are flushed and the number of batches done is saved
        in ``out_dir/capture-state.json`` with this key; a later call with
        the same key, sites, reductions and model weights (a SHA-256 of its
        ``state_dict``) skips those batches (they must come in the same order)
        and appends to the files; anything else starts over.
    progress : bool or None, default=None
        A progress bar over batches (None: on a terminal only).
    keep_on_device : bool, default=False
        Keep the reduced rows where the model runs (a GPU) and return torch
        tensors there, for :func:`idest.knn` to search without a round trip
        to the host (``backend="auto"`` picks the torch backend for GPU
        tensors). The device must hold every site's rows; not with ``out_dir``.

    Returns
    -------
    dict of str -> ndarray of shape (n_rows, width)
        One array per site in the order of :func:`resolve_sites`; float32
        (float16/bfloat16 activations are upcast), float64 for float64 models;
        torch tensors on the model's device with ``keep_on_device``.
        Sites whose module never ran (e.g. an attention dropout that a fused
        kernel bypasses) are left out with a ``RuntimeWarning``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    >>> images = [torch.randn(8, 3, 6, 6) for _ in range(2)]
    >>> acts = capture(net, images, ["0", "1"], reduce="flatten")
    >>> acts["0"].shape, acts["1"].dtype
    ((16, 64), dtype('float32'))
    """
    import torch

    _check_module(model)
    check_int(chunk_rows, "chunk_rows", "capture", 1)
    if keep_on_device and out_dir is not None:
        raise invalid("capture", "out_dir", "None with keep_on_device=True (rows kept on the "
                      "device are not streamed to disk)", repr(str(out_dir)),
                      "Pass keep_on_device=True or out_dir, not both.")
    resolved = resolve_sites(model, sites)
    reductions = per_site(resolved, reduce)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    n_batches = len(batches) if hasattr(batches, "__len__") else None
    state = _BatchState()

    def expected_rows(first_rows: int) -> int:
        total = n_samples if n_samples is not None else (n_batches or 1) * state.first_size
        return math.ceil(first_rows * total / state.first_size)

    sinks = {s.name: _Sink(out / f"{s.name}.npy" if out else None, chunk_rows, expected_rows,
                           keep_on_device) for s in resolved}
    checkpoint = (_Checkpoint(out / "capture-state.json",
                              {"id": resume_key, "weights": content_hash(model)}, reductions,
                              sinks)
                  if out is not None and resume_key is not None else None)
    skip = 0
    if checkpoint:
        skip, state.first_size = checkpoint.restore()

    def record(site: Site, tensor: Any) -> None:
        sinks[site.name].append(reductions[site.name].apply(tensor.detach(), state.mask))

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with (torch.no_grad(), hooks(model, resolved, record),
              progress_bar(progress, total=n_batches, desc="capture", unit="batch") as bar):
            if bar is not None:
                bar.update(skip)
            for index, batch in enumerate(batches):
                if index < skip:
                    continue
                args, kwargs, state.mask, size = _prepare(batch, device)
                state.first_size = state.first_size or size
                model(*args, **kwargs)
                if bar is not None:
                    bar.update(1)
                if checkpoint:
                    checkpoint.save_if_due(index + 1, state.first_size, chunk_rows)
    finally:
        model.train(was_training)
    if not state.first_size:
        raise ValueError("capture received no batches; pass a non-empty iterable of inputs.")
    missing = [name for name, sink in sinks.items() if sink.empty]
    if missing:
        warnings.warn(f"{len(missing)} site(s) never ran during the forward passes and are left "
                      f"out of the result: {', '.join(missing)}.", RuntimeWarning, stacklevel=2)
    result = {name: sink.close() for name, sink in sinks.items() if not sink.empty}
    if checkpoint:
        checkpoint.path.unlink(missing_ok=True)
    return result
