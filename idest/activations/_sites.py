"""Capture sites: module paths and TransformerLens names through a per-architecture table."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: A site selection: a name, a glob pattern (``*``, ``?``, ``[...]``), a
#: predicate on names, or a sequence of these.
SiteSpec = str | Callable[[str], bool] | Sequence["str | Callable[[str], bool] | Site"]




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
            close = difflib.get_close_matches(str(spec), list(available), n=3, cutoff=0.6)
            hint = (f"did you mean {', '.join(map(repr, close))}? " if close else
                    f"{len(available)} sites exist, e.g. {', '.join(list(available)[:4])}; ")
            raise KeyError(f"Site {spec!r} matches nothing in {type(model).__name__}; {hint}"
                           "list them with idest.list_sites(model) (idest scan --list-sites).")
        chosen.update((n, available[n]) for n in names if n not in chosen)
    plain = [n for n, s in chosen.items() if s.n_layers == 0 and n not in given]
    for rank, name in enumerate(plain):
        s = chosen[name]
        chosen[name] = Site(s.name, s.module, False, s.kind, rank, len(plain) - 1)
    return list(chosen.values())

def _check_module(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"Expected a torch.nn.Module, got {type(model).__name__}; pass the "
                         "model itself (for HuggingFace, the object from_pretrained returns).")
