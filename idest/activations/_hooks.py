"""Forward hooks on the selected sites, removed however the block ends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from idest.activations._sites import Site, SiteSpec, resolve_sites


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
