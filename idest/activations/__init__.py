"""Activations from PyTorch models: site tables, reductions, hooks, streamed storage,
and the token sequences that feed language models.
"""

from idest.activations._capture import capture, per_site
from idest.activations._hooks import hooks
from idest.activations._reductions import Reduction
from idest.activations._sites import LAYOUTS, Site, SiteSpec, list_sites, resolve_sites
from idest.activations._text import (
    MINILM_NAMES,
    TokenSequences,
    load_pretrained,
    minilm_path,
    read_texts,
    stdlib_docstrings,
    token_sequences,
)

__all__ = [
    "LAYOUTS", "MINILM_NAMES", "Reduction", "Site", "SiteSpec", "TokenSequences", "capture",
    "hooks", "list_sites", "load_pretrained", "minilm_path", "per_site", "read_texts",
    "resolve_sites", "stdlib_docstrings", "token_sequences",
]
