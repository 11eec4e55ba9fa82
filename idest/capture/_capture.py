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

import contextlib
import fnmatch
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idest.utils import progress_bar, read_json, write_json

#: Reduction kinds understood by :class:`Reduction`.
REDUCTION_KINDS = ("flatten", "all", "mean", "last", "position")

#: A site selection: a name, a glob pattern (``*``, ``?``, ``[...]``), a
#: predicate on names, or a sequence of these.
SiteSpec = str | Callable[[str], bool] | Sequence["str | Callable[[str], bool] | Site"]


@dataclass(frozen=True)
class Reduction:
    """How one captured tensor becomes vectors, one or more per sample.

    A captured tensor is read as ``(batch, positions, channels)``: a sequence
    site ``(B, T, D)`` as it is (``channel_axis=-1``), a convolutional map
    ``(B, C, H, W)`` with its channels moved last (``channel_axis=1``, the
    default for tensors of 4 or more dimensions), so its positions are the
    H·W pixels. A 2-D tensor ``(B, D)`` is already one vector per sample and
    is returned unchanged by every kind. When the batch carries an
    ``attention_mask`` of the same length as the positions, padding is never
    selected.

    Parameters
    ----------
    kind : {"flatten", "all", "mean", "last", "position"}, default="last"
        ``"flatten"``: everything after the batch axis, in memory order
        (C·H·W for a conv map; the mask is ignored). ``"all"``: every
        (non-padding) position's channel vector, ``B·T`` rows. ``"mean"``:
        the mean over (non-padding) positions. ``"last"``: the last
        non-padding position (the paper's last token, whether the batch is
        padded on the left or the right). ``"position"``: a fixed position
        counted from each sequence's first non-padding token (negative values
        count back from its last, -1 being the last token).
    position : int, optional
        The position for ``kind="position"`` (required there, refused elsewhere).
    skip_first : bool, default=False
        Leave out each sequence's first non-padding position in ``"all"`` and
        ``"mean"`` (under causal attention position 0 gives the same vector in
        every sequence: exact duplicates).
    channel_axis : int, optional
        Axis of the channels; default -1 for 3-D tensors, 1 for 4-D and more.

    Examples
    --------
    >>> Reduction("position", position=5)
    Reduction(kind='position', position=5, skip_first=False, channel_axis=None)
    >>> Reduction.parse("position:-2").position
    -2
    """

    kind: str = "last"
    position: int | None = None
    skip_first: bool = False
    channel_axis: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in REDUCTION_KINDS:
            raise ValueError(f"Reduction kind must be one of {', '.join(REDUCTION_KINDS)}; "
                             f"got {self.kind!r}.")
        if (self.kind == "position") != (self.position is not None):
            raise ValueError("Reduction needs position=<int> exactly when kind='position'; "
                             f"got kind={self.kind!r} with position={self.position!r}.")
        if self.skip_first and self.kind not in ("all", "mean"):
            raise ValueError(f"skip_first applies to kind 'all' or 'mean', not {self.kind!r}; "
                             "drop skip_first or change the kind.")

    @classmethod
    def parse(cls, spec: str | Reduction) -> Reduction:
        """A Reduction from its short text form: ``"last"``, ``"mean"``,
        ``"all"``, ``"flatten"``, ``"position:3"``; a Reduction is returned as is.

        Examples
        --------
        >>> Reduction.parse("mean").kind
        'mean'
        """
        if isinstance(spec, Reduction):
            return spec
        if not isinstance(spec, str):
            raise ValueError(f"A reduction must be a Reduction or a string like 'last' or "
                             f"'position:3'; got {type(spec).__name__}.")
        kind, _, arg = spec.partition(":")
        if kind != "position" or not arg:
            if arg:
                raise ValueError(f"Only 'position' takes an argument ('position:3'); got {spec!r}.")
            return cls(kind)
        try:
            return cls("position", position=int(arg))
        except ValueError:
            raise ValueError(
                f"Expected 'position:<int>' such as 'position:3', got {spec!r}.") from None

    def apply(self, tensor: Any, mask: Any | None = None) -> Any:
        """Reduce a captured tensor of shape (B, ...) to vectors (rows, width).

        ``mask`` is a (B, T) 0/1 attention mask; it applies when T equals the
        number of positions of the tensor.

        Examples
        --------
        >>> import torch
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
        >>> Reduction("last").apply(x, mask)[:, 0].tolist()   # positions 1 and 2
        [4.0, 20.0]
        """
        import torch

        B = tensor.shape[0]
        if self.kind == "flatten" or tensor.ndim == 2:
            return tensor.reshape(B, -1)
        axis = self.channel_axis
        if axis is None:
            axis = -1 if tensor.ndim == 3 else 1
        seq = tensor.movedim(axis, -1).reshape(B, -1, tensor.shape[axis])  # (B, P, C)
        P = seq.shape[1]
        if mask is None or mask.shape[-1] != P:
            mask = torch.ones((B, P), dtype=torch.bool, device=seq.device)
        else:
            mask = mask.to(device=seq.device, dtype=torch.bool)
        rows = torch.arange(B, device=seq.device)
        first = mask.int().argmax(dim=1)
        last = P - 1 - mask.flip(1).int().argmax(dim=1)
        if self.kind == "last":
            return seq[rows, last]
        if self.kind == "position":
            where = first + self.position if self.position >= 0 else last + 1 + self.position
            bad = (where < first) | (where > last)
            if bool(bad.any()):
                row = int(bad.int().argmax())
                raise ValueError(
                    f"position {self.position} lies outside sequence {row} of the batch, "
                    f"which has {int(mask[row].sum())} non-padding positions; use longer "
                    "sequences or a smaller position.")
            return seq[rows, where]
        if self.skip_first:
            mask = mask.clone()
            mask[rows, first] = False
        if self.kind == "all":
            return seq[mask]
        weights = mask.to(seq.dtype).unsqueeze(-1)
        return (seq * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


# --- names: the per-architecture table -------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the TransformerLens sites live in one HuggingFace architecture.

    Paths of ``attn_out``, ``mlp_out`` and ``resid_mid`` are relative to a
    block; ``blocks``, ``embed`` and ``final`` to the base model (the prefix
    such as ``transformer.`` of ``GPT2LMHeadModel`` is found automatically).
    """

    blocks: str
    embed: str
    attn_out: str
    mlp_out: str
    resid_mid: str
    resid_mid_is_input: bool
    final: str | None


_GPT2 = Layout(blocks="h", embed="wte", attn_out="attn", mlp_out="mlp",
               resid_mid="ln_2", resid_mid_is_input=True, final="ln_f")
# BERT-style encoders are post-LN: attn_out and mlp_out are the dense projections
# before dropout, residual add and LayerNorm; resid_mid is the attention block's
# normalised output.
_BERT = Layout(blocks="encoder.layer", embed="embeddings", attn_out="attention.output.dense",
               mlp_out="output.dense", resid_mid="attention", resid_mid_is_input=False,
               final=None)

#: HuggingFace ``config.model_type`` -> layout of its modules.
LAYOUTS: dict[str, Layout] = {
    "gpt2": _GPT2,
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "camembert": _BERT,
    "electra": _BERT,
}


@dataclass(frozen=True)
class Site:
    """One capturable place in a model, and where it sits in depth.

    Attributes
    ----------
    name : str
        The name it was asked for (TransformerLens name or module path).
    module : str
        The ``named_modules()`` path hooked.
    capture_input : bool
        True when the site is the module's input (forward pre-hook).
    kind : str
        What kind of site it is: ``"hook_attn_out"``, ``"hook_resid_post"``,
        ``"embed"``, ``"hidden_states"``, ... or the module's class name.
    layer : int
        Depth index: 0 for the embedding, ``i + 1`` for the outputs of block
        ``i``, ``i`` for its input; for plain module paths, the rank among
        the selected sites in model order.
    n_layers : int
        The deepest layer index of the family (number of blocks).
    """

    name: str
    module: str
    capture_input: bool
    kind: str
    layer: int
    n_layers: int

    @property
    def relative_depth(self) -> float:
        """``layer / n_layers`` (0 for the input side, 1 for the last layer)."""
        return self.layer / self.n_layers if self.n_layers else 0.0


def _layout_of(model: Any) -> tuple[Layout, str, int] | None:
    """The layout, base prefix and number of blocks of a known architecture."""
    import torch

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    layout = LAYOUTS.get(model_type)
    if layout is None:
        return None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and (
                name == layout.blocks or name.endswith("." + layout.blocks)):
            return layout, name[: len(name) - len(layout.blocks)], len(module)
    return None


def _transformer_sites(model: Any) -> list[Site]:
    """TransformerLens-named sites of a model whose architecture is in LAYOUTS."""
    found = _layout_of(model)
    if found is None:
        return []
    layout, prefix, L = found
    block = f"{prefix}{layout.blocks}.{{}}"
    sites = [Site("embed", prefix + layout.embed, False, "embed", 0, L)]
    for i in range(L):
        b = block.format(i)
        sites += [
            Site(f"blocks.{i}.hook_resid_pre", b, True, "hook_resid_pre", i, L),
            Site(f"blocks.{i}.hook_attn_out", f"{b}.{layout.attn_out}", False,
                 "hook_attn_out", i + 1, L),
            Site(f"blocks.{i}.hook_resid_mid", f"{b}.{layout.resid_mid}",
                 layout.resid_mid_is_input, "hook_resid_mid", i + 1, L),
            Site(f"blocks.{i}.hook_mlp_out", f"{b}.{layout.mlp_out}", False,
                 "hook_mlp_out", i + 1, L),
            Site(f"blocks.{i}.hook_resid_post", b, False, "hook_resid_post", i + 1, L),
        ]
    if layout.final is not None:
        sites.append(Site("ln_final", prefix + layout.final, False, "ln_final", L, L))
    # hidden_states.i is HuggingFace's output_hidden_states[i]: the input of block i,
    # and at i = L the final output (after the final layer norm where there is one).
    for i in range(L + 1):
        if i < L:
            module, is_input = block.format(i), True
        elif layout.final is not None:
            module, is_input = prefix + layout.final, False
        else:
            module, is_input = block.format(L - 1), False
        sites.append(Site(f"hidden_states.{i}", module, is_input, "hidden_states", i, L))
    modules = dict(model.named_modules())
    return [s for s in sites if s.module in modules]


def _all_sites(model: Any) -> dict[str, Site]:
    """Every capturable site by name: TransformerLens names, then module paths.

    ``ModuleList`` and ``ModuleDict`` are left out: they hold modules but are
    never called, so they have no output.
    """
    import torch

    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)
    sites = {s.name: s for s in _transformer_sites(model)}
    for path, module in model.named_modules():
        if path and path not in sites and not isinstance(module, containers):
            sites[path] = Site(path, path, False, type(module).__name__, 0, 0)
    return sites


def list_sites(model: Any) -> list[str]:
    """Names of everything :func:`capture` can record in ``model``.

    TransformerLens names first (for architectures in :data:`LAYOUTS`), then
    every ``named_modules()`` path, in model order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> list_sites(net)
    ['0', '1']
    """
    _check_module(model)
    return list(_all_sites(model))


def resolve_sites(model: Any, sites: SiteSpec) -> list[Site]:
    """The :class:`Site` records selected by names, glob patterns or predicates.

    Parameters
    ----------
    model : torch.nn.Module
    sites : str, callable or sequence of them
        Exact names (TransformerLens names or module paths), glob patterns
        such as ``"blocks.*.hook_attn_out"``, or predicates ``f(name) -> bool``.
        Patterns and predicates select in model order; duplicates are dropped.
        :class:`Site` records (from an earlier call) are kept as they are.

    Returns
    -------
    list of Site
        Module-path sites get ``layer`` = their rank in this selection.

    Raises
    ------
    KeyError
        A name or pattern that matches nothing; the message lists the
        available names.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> [(s.name, s.kind, s.layer) for s in resolve_sites(net, ["0", "2"])]
    [('0', 'Linear', 0), ('2', 'Linear', 1)]
    """
    _check_module(model)
    available = _all_sites(model)
    specs = [sites] if isinstance(sites, str) or callable(sites) else list(sites)
    if not specs:
        raise ValueError("No sites requested; pass names, patterns or a predicate "
                         "(see idest.list_sites(model)).")
    chosen: dict[str, Site] = {}
    given: set[str] = set()  # Site records passed in are kept as they are
    for spec in specs:
        if isinstance(spec, Site):
            chosen.setdefault(spec.name, spec)
            given.add(spec.name)
            continue
        if callable(spec):
            names = [n for n in available if spec(n)]
        elif any(c in spec for c in "*?["):
            names = fnmatch.filter(available, spec)
        else:
            names = [spec] if spec in available else []
        if not names:
            raise KeyError(f"Site {spec!r} matches nothing in {type(model).__name__}; "
                           f"available sites: {', '.join(available)}")
        chosen.update((n, available[n]) for n in names if n not in chosen)
    plain = [n for n, s in chosen.items() if s.n_layers == 0 and n not in given]
    for rank, name in enumerate(plain):
        s = chosen[name]
        chosen[name] = Site(s.name, s.module, False, s.kind, rank, len(plain) - 1)
    return list(chosen.values())


# --- hooks --------------------------------------------------------------------------------


def _first_tensor(value: Any, site: str) -> Any:
    """The tensor in a module's output: tuples and ModelOutputs give their first entry."""
    import torch

    while not isinstance(value, torch.Tensor):
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        elif isinstance(value, Mapping) and value:
            value = next(iter(value.values()))
        else:
            raise ValueError(f"Site {site!r} produced {type(value).__name__}, not a tensor; "
                             "choose a module that outputs a tensor.")
    return value


@contextlib.contextmanager
def hooks(model: Any, sites: SiteSpec,
          callback: Callable[[Site, Any], None]) -> Iterator[list[Site]]:
    """Call ``callback(site, tensor)`` whenever a site is computed; remove the hooks on exit.

    The hooks are removed in ``finally``, so an exception (or Ctrl-C) inside
    the ``with`` block leaves the model clean.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> seen = {}
    >>> with hooks(net, "1", lambda site, t: seen.update({site.name: t.shape})):
    ...     _ = net(torch.zeros(3, 4))
    >>> seen, len(net[1]._forward_hooks)
    ({'1': torch.Size([3, 8])}, 0)
    """
    resolved = resolve_sites(model, sites)
    modules = dict(model.named_modules())
    handles = []

    def on_output(site: Site) -> Callable:
        return lambda module, args, output: callback(site, _first_tensor(output, site.name))

    def on_input(site: Site) -> Callable:
        return lambda module, args, kwargs: callback(
            site, _first_tensor(args if args else kwargs, site.name))

    try:
        for site in resolved:
            module = modules[site.module]
            if site.capture_input:
                handles.append(module.register_forward_pre_hook(on_input(site), with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(on_output(site)))
        yield resolved
    finally:
        for handle in handles:
            handle.remove()


# --- storage ------------------------------------------------------------------------------


class _Sink:
    """Rows of one site, copied straight from the reduced tensor into preallocated storage.

    In memory: blocks of ``chunk_rows`` rows. On disk: one ``.npy`` opened with
    ``open_memmap``, sized from the expected number of rows and grown (copied
    chunk by chunk) if that was too small. Nothing small and long-lived is
    allocated per batch: with glibc's adaptive mmap threshold, such objects
    scattered between the forward pass's large temporaries made the heap grow
    by ~25 MB per batch.
    """

    def __init__(self, path: Path | None, chunk_rows: int, expected_rows: Callable[[int], int]):
        self.path = path
        self.chunk_rows = chunk_rows
        self.expected_rows = expected_rows  # rows of the first batch -> expected total
        self.blocks: list[np.ndarray] = []  # in memory
        self.array: np.memmap | None = None  # on disk
        self.n = 0

    def append(self, rows: Any) -> None:
        """Copy a (m, width) CPU or GPU tensor in, converting to float32 (float64 stays)."""
        import torch

        dtype = np.float64 if rows.dtype == torch.float64 else np.float32
        m, width = rows.shape
        if self.path is not None:
            if self.array is None:
                self.array = np.lib.format.open_memmap(
                    self.path, mode="w+", dtype=dtype,
                    shape=(max(self.expected_rows(m), m), width))
            if self.n + m > len(self.array):
                self._resize(max(2 * len(self.array), self.n + m))
            torch.from_numpy(self.array[self.n : self.n + m]).copy_(rows)
            self.n += m
            return
        done = 0
        while done < m:
            if self.n == len(self.blocks) * self.chunk_rows:
                self.blocks.append(np.empty((self.chunk_rows, width), dtype))
            offset = self.n % self.chunk_rows
            take = min(m - done, self.chunk_rows - offset)
            torch.from_numpy(self.blocks[-1][offset : offset + take]).copy_(rows[done:done + take])
            done += take
            self.n += take

    def _resize(self, rows: int) -> None:
        """Copy the rows written so far into a new .npy of ``rows`` rows, chunk by chunk."""
        tmp = self.path.with_name(self.path.name + ".resize.npy")
        new = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.array.dtype,
                                        shape=(rows, self.array.shape[1]))
        for start in range(0, self.n, self.chunk_rows):
            stop = min(self.n, start + self.chunk_rows)
            new[start:stop] = self.array[start:stop]
        new.flush()
        del new
        self.array = None
        os.replace(tmp, self.path)
        self.array = np.lib.format.open_memmap(self.path, mode="r+")

    def reopen(self, n: int) -> None:
        """Continue a file of which the first ``n`` rows were written by an earlier run."""
        self.array = np.lib.format.open_memmap(self.path, mode="r+")
        self.n = n

    def checkpoint(self) -> int:
        """Flush the file to disk; the number of rows stored."""
        if self.array is not None:
            self.array.flush()
        return self.n

    @property
    def empty(self) -> bool:
        return self.n == 0

    def close(self) -> np.ndarray:
        if self.path is None:
            full = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
            return full[: self.n]
        if self.n != len(self.array):
            self._resize(self.n)
        self.array.flush()
        self.array = None
        return np.load(self.path, mmap_mode="r")


class _Checkpoint:
    """The resumable state of a streamed capture: batches done and rows stored per site.

    Saved (atomically) each time a chunk of rows has gone to disk, after every
    site's buffer has been flushed, so the files and the state always agree.
    """

    def __init__(self, path: Path, key: Any, reductions: Mapping[str, Reduction],
                 sinks: Mapping[str, _Sink]):
        self.path = path
        self.sinks = sinks
        self.state = json.loads(json.dumps(
            {"key": key, "reduce": {name: repr(r) for name, r in reductions.items()}},
            default=str))
        self.saved = dict.fromkeys(sinks, 0)  # rows per site at the last save

    def restore(self, first_size: list[int]) -> int:
        """Reopen the files of a matching earlier run; the number of batches it finished."""
        saved = read_json(self.path)
        if not saved or {k: saved.get(k) for k in self.state} != self.state:
            return 0
        for name, sink in self.sinks.items():
            if saved["rows"][name]:
                sink.reopen(saved["rows"][name])
        first_size.append(saved["first_size"])
        self.saved = saved["rows"]
        return saved["batches_done"]

    def save_if_due(self, batches_done: int, first_size: int, every_rows: int) -> None:
        """Save the state once some site has written ``every_rows`` rows since the last save."""
        if all(sink.n - self.saved[name] < every_rows for name, sink in self.sinks.items()):
            return
        self.saved = {name: sink.checkpoint() for name, sink in self.sinks.items()}
        write_json(self.path, {**self.state, "batches_done": batches_done,
                                "first_size": first_size, "rows": self.saved})


# --- the capture loop -------------------------------------------------------------------------


def _check_module(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"Expected a torch.nn.Module, got {type(model).__name__}; pass the "
                         "model itself (for HuggingFace, the object from_pretrained returns).")


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
    x = _to_device(batch[0] if isinstance(batch, (tuple, list)) else batch, device)
    return (x,), {}, None, int(x.shape[0])


def per_site(sites: Sequence[Site], reduce: str | Reduction | Mapping[str, str | Reduction]
              ) -> dict[str, Reduction]:
    """The Reduction of each site: one for all, or a mapping by name (default "last")."""
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
) -> dict[str, np.ndarray]:
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
        the same key, sites and reductions skips those batches (they must
        come in the same order) and appends to the files.
    progress : bool or None, default=None
        A progress bar over batches (None: on a terminal only).

    Returns
    -------
    dict of str -> ndarray of shape (n_rows, width)
        One array per site in the order of :func:`resolve_sites`; float32
        (float16/bfloat16 activations are upcast), float64 for float64 models.
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
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}.")
    resolved = resolve_sites(model, sites)
    reductions = per_site(resolved, reduce)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    n_batches = len(batches) if hasattr(batches, "__len__") else None
    first_size: list[int] = []  # the first batch's size, known before its forward pass

    def expected_rows(first_rows: int) -> int:
        total = n_samples if n_samples is not None else (n_batches or 1) * first_size[0]
        return math.ceil(first_rows * total / first_size[0])

    sinks = {s.name: _Sink(out / f"{s.name}.npy" if out else None, chunk_rows, expected_rows)
             for s in resolved}
    checkpoint = (_Checkpoint(out / "capture-state.json", resume_key, reductions, sinks)
                  if out is not None and resume_key is not None else None)
    skip = checkpoint.restore(first_size) if checkpoint else 0
    mask: list[Any] = [None]

    def record(site: Site, tensor: Any) -> None:
        sinks[site.name].append(reductions[site.name].apply(tensor.detach(), mask[0]))

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
                args, kwargs, mask[0], size = _prepare(batch, device)
                first_size[:] = first_size or [size]
                model(*args, **kwargs)
                if bar is not None:
                    bar.update(1)
                if checkpoint:
                    checkpoint.save_if_due(index + 1, first_size[0], chunk_rows)
    finally:
        model.train(was_training)
    if not first_size:
        raise ValueError("capture received no batches; pass a non-empty iterable of inputs.")
    missing = [name for name, sink in sinks.items() if sink.empty]
    if missing:
        warnings.warn(f"{len(missing)} site(s) never ran during the forward passes and are left "
                      f"out of the result: {', '.join(missing)}.", RuntimeWarning, stacklevel=2)
    result = {name: sink.close() for name, sink in sinks.items() if not sink.empty}
    if checkpoint:
        checkpoint.path.unlink(missing_ok=True)
    return result
