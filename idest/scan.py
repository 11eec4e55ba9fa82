"""The layer scan: the intrinsic dimension of every site of a model, as one table and one figure.

Sharma & Kaplan (2020), section 3.4 and figure 10: capture activation vectors
at every site in one pass over the inputs (:func:`idest.capture`), then, per
site, one k-NN search shared by TwoNN and the k-NN CDF estimates (k = 2, 3, 4;
eq. 2.7–2.8) and the Levina–Bickel MLE (B.12) through :func:`idest.estimate_all`,
and on request GRIDE across scales (:func:`idest.gride`) from the same search.

Layout of ``out_dir``::

    activations/{site}.npy        captured vectors (streamed to disk)
    activations/{site}.done.json  written once that site's file is complete
    results/{site}.json           the site's rows, with the settings that produced them
    scan.csv, scan.json, scan.png the table and the figure
    scan_gride.png                with GRIDE: ID against scale, one curve per site

An interrupted scan resumes: sites with results made under the same settings
and by the same estimator code are not estimated again, sites whose activation
files are complete are not captured again, and an interrupted capture continues
from its last checkpoint (``activations/capture-state.json``, every :data:`CHECKPOINT_ROWS` rows).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import idest.estimators as estimators
from idest.activations import (
    LAYOUTS,
    Reduction,
    Site,
    SiteSpec,
    capture,
    per_site,
    resolve_sites,
)
from idest.estimators import DuplicatesWarning, NoPlateauWarning, estimate_all, gride
from idest.neighbors import knn
from idest.utils import (
    as_completed_units,
    atomic_write,
    check_client,
    content_hash,
    progress_bar,
    read_json,
    write_json,
)

__all__ = ["COLUMNS", "DEFAULT_N_BOOTSTRAP", "GPT2_PAPER_SITES", "SHARDED_SITE_ROWS", "ScanResult",
           "default_sites", "layer_scan",
           "plot_gride_scan", "plot_scan", "scan_figure"]

#: Columns of the scan table, in order.
COLUMNS = ("site", "kind", "layer", "relative_depth", "estimator", "k", "id", "ci_low",
           "ci_high", "n_points", "n_duplicates_dropped", "ambient_dim", "note", "n2_low",
           "n2_high")

#: Bootstrap resamples of a scan (and of every ``idest`` command) unless told otherwise: for
#: the four estimators of a site with N = 10,000 vectors of D = 384 they add 7 % to the k-NN
#: search the estimators share (README, "Measured"); more resamples give smoother ends.
DEFAULT_N_BOOTSTRAP = 100

#: Rows per site between two checkpoints of an interrupted capture.
CHECKPOINT_ROWS = 1024

#: With a Dask client, sites of at least this many vectors have their k-NN search sharded
#: over the cluster (one site then uses every worker); smaller sites are one task each.
SHARDED_SITE_ROWS = 50_000

#: Sites of the paper's GPT-2 scan (figure 10): every block's attention, MLP and residual output.
GPT2_PAPER_SITES = ("blocks.*.hook_attn_out", "blocks.*.hook_mlp_out", "blocks.*.hook_resid_post")


@dataclass(frozen=True)
class ScanResult:
    """What :func:`layer_scan` produced.

    Attributes
    ----------
    rows : list of dict
        The tidy table, one row per site and estimator (keys: :data:`COLUMNS`).
        A site whose estimate failed (e.g. too few distinct vectors) has one
        row with ``id`` None and the reason in ``note``.
    csv, json, plot : Path
        Where the table and the figure were written.
    n_sites_reused : int
        Sites whose results were found in ``out_dir`` and not recomputed.
    gride_plot : Path or None
        The ID-against-scale figure, when GRIDE ran.
    """

    rows: list[dict]
    csv: Path
    json: Path
    plot: Path
    n_sites_reused: int
    gride_plot: Path | None = None


def default_sites(model: Any) -> tuple[str, ...]:
    """The sites scanned when none are named: the paper's for GPT-2 (:data:`GPT2_PAPER_SITES`),
    every hidden state (``hidden_states.*``) for the encoders of :data:`idest.activations.LAYOUTS`.

    Examples
    --------
    >>> import transformers
    >>> default_sites(transformers.GPT2Model(transformers.GPT2Config(n_layer=1)))
    ('blocks.*.hook_attn_out', 'blocks.*.hook_mlp_out', 'blocks.*.hook_resid_post')
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type == "gpt2":
        return GPT2_PAPER_SITES
    if model_type in LAYOUTS:
        return ("hidden_states.*",)
    raise ValueError(f"No default sites for {type(model).__name__} (model type {model_type!r}); "
                     "name them (module paths or patterns, see idest.list_sites(model)).")


def _flat_interval(interval: tuple[float, float]) -> dict[str, float | None]:
    """The ``ci_low``/``ci_high`` columns of an estimate's interval (None when it has none)."""
    low, high = interval
    return {"ci_low": None if np.isnan(low) else low, "ci_high": None if np.isnan(high) else high}


def _site_rows(X: Any, site: Site, *, ks: Sequence[int], mle_k: int, n_bootstrap: int,
               random_state: int | None, gride_range_max: int | None = None,
               client: Any = None) -> tuple[list[dict], dict | None]:
    """The table rows of one site: every estimator of :func:`idest.estimate_all`, and GRIDE's
    plateau when ``gride_range_max`` is set (with its curve, ``GRIDEResult.to_dict()``).

    With a Dask ``client`` the site's k-NN search is sharded over the cluster
    (:func:`idest.neighbors.sharded_knn`, the same neighbours bit for bit; the
    memory map of an activation file is searched by its path)."""
    base = {"site": site.name, "kind": site.kind, "layer": site.layer,
            "relative_depth": site.relative_depth, "ambient_dim": int(X.shape[1]),
            "n2_low": None, "n2_high": None}
    failed = {"estimator": None, "k": None, "id": None, "ci_low": None, "ci_high": None,
              "n_points": int(X.shape[0]), "n_duplicates_dropped": None}
    curve = None
    data = X
    try:
        k = max(2, *ks, mle_k)
        if gride_range_max:  # one search for every estimator, GRIDE's largest n2 included
            k = min(max(k, 1 << (int(gride_range_max).bit_length() - 1)), int(X.shape[0]) - 1)
        if client is not None:
            data = knn(X, k, progress=False, client=client)
        elif gride_range_max or not isinstance(X, np.ndarray):  # a tensor: on its device
            data = knn(X, k, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DuplicatesWarning)  # counted in the table instead
            results = estimate_all(data, ks=ks, mle_k=mle_k, n_bootstrap=n_bootstrap,
                                   random_state=random_state, duplicates="drop", progress=False)
    except ValueError as exc:
        return [_row({**base, **failed, "note": str(exc)})], None
    rows = [_row({**base, "estimator": r.method, "k": r.k, "id": r.dimension,
                  **_flat_interval(r.interval), "n_points": r.n_points,
                  "n_duplicates_dropped": r.n_duplicates_dropped, "note": ""}) for r in results]
    if gride_range_max:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DuplicatesWarning)
                warnings.simplefilter("ignore", NoPlateauWarning)  # a row that says so
                g = gride(data, gride_range_max, n_bootstrap=n_bootstrap,
                          random_state=random_state, progress=False)
        except ValueError as exc:
            rows.append(_row({**base, **failed, "estimator": "gride", "note": str(exc)}))
        else:
            curve = g.to_dict()
            found = g.plateau_range or (None, None)
            rows.append(_row({
                **base, "estimator": "gride", "k": int(g.n2[-1]),
                "id": g.dimension if g.plateau_found else None, **_flat_interval(g.interval),
                "n_points": g.n_points, "n_duplicates_dropped": g.n_duplicates_dropped,
                "n2_low": found[0], "n2_high": found[1],
                "note": "" if g.plateau_found else "no plateau"}))
    return rows, curve


def _row(row: dict) -> dict:
    return {column: row[column] for column in COLUMNS}


def _site_task(path: str, site: Site, settings: dict[str, Any]
               ) -> tuple[list[dict], dict | None]:
    """:func:`_site_rows` of one site's activation file, run by a Dask worker (which maps it)."""
    return _site_rows(np.load(path, mmap_mode="r"), site, **settings)


def _check_settings(ks: Sequence[int], mle_k: int, n_bootstrap: int,
                    random_state: int | None) -> None:
    """Refuse bad estimator settings before the (long) capture: a dry run of
    :func:`idest.estimate_all` on a few random points raises what the real run would."""
    ints = [k for k in (*ks, mle_k) if isinstance(k, int | np.integer)]
    n_points = min(max(ints, default=2) + 3, 10_000)
    light = 2 if isinstance(n_bootstrap, int | np.integer) and n_bootstrap > 2 else n_bootstrap
    if isinstance(random_state, np.random.Generator):  # valid; do not draw from the caller's
        random_state = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimators.estimate_all(np.random.default_rng(0).normal(size=(n_points, 3)), ks=ks,
                                mle_k=mle_k, n_bootstrap=light, random_state=random_state,
                                progress=False)


def _estimator_code() -> str:
    """A hash of the source of the estimators and the k-NN front end: results stored by
    another version of that code are recomputed (from the stored activations), never
    reused (a changed plateau rule would otherwise leave old plateaus in the table)."""
    root = Path(__file__).parent
    files = sorted([*(root / "estimators").glob("*.py"), *(root / "neighbors").glob("*.py")])
    return content_hash([(f.name, f.read_bytes()) for f in files])


def _what_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Names of the parts of a result's key that differ (for the one-line notice)."""
    names = {"model": "model", "inputs": "inputs", "module": "site", "input": "site",
             "reduce": "reduction", "code": "estimator code"}
    parts = []
    for key in dict.fromkeys((*old, *new)):
        if old.get(key) == new.get(key):
            continue
        if key == "model" and isinstance(old.get(key), dict):
            parts += ["model weights" if k == "weights" else "model"
                      for k in new[key] if old[key].get(k) != new[key].get(k)]
        else:
            parts.append(names.get(key, "estimator settings"))
    return list(dict.fromkeys(parts))


def layer_scan(
    model: Any,
    batches: Iterable[Any],
    sites: SiteSpec,
    out_dir: str | Path,
    *,
    reduce: str | Reduction | Mapping[str, str | Reduction] = "last",
    n_samples: int | None = None,
    ks: Sequence[int] = (2, 3, 4),
    mle_k: int = 20,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    random_state: int | np.random.Generator | None = 0,
    gride_range_max: int | None = None,
    inputs_id: Any = None,
    title: str | None = None,
    progress: bool | None = None,
    keep_on_device: bool = False,
    client: Any = None,
) -> ScanResult:
    """Intrinsic dimension of every site of a model: capture, estimate, table, figure.

    Parameters
    ----------
    model : torch.nn.Module
    batches : iterable
        Input batches, as for :func:`idest.capture`; iterated only if some site
        still needs capturing.
    sites : str, callable or sequence
        As for :func:`idest.resolve_sites` (e.g. :data:`GPT2_PAPER_SITES`).
    out_dir : str or Path
        Where activations, per-site results, the table and the figure go.
    reduce : str, Reduction or mapping, default="last"
        Per-site reduction to vectors (the paper: the last token).
    n_samples : int, optional
        Number of input samples (sizes the activation files up front).
    ks, mle_k, n_bootstrap, random_state
        Passed to :func:`idest.estimate_all` (k-NN CDF ks with k = 2 = TwoNN,
        MLE k, bootstrap resamples over points, :data:`DEFAULT_N_BOOTSTRAP` by
        default, 0 for none, and their seed). A Generator is turned into one
        int seed first, recorded with the results.
    gride_range_max : int, optional
        Also run :func:`idest.gride` up to n2 = ``gride_range_max`` on the same
        neighbour search: one table row per site with the plateau ID, its
        interval and n2 range (``id`` None and the note "no plateau" when
        there is none), and the figure ``scan_gride.png``.
    inputs_id : JSON-serialisable, optional
        Something that identifies the inputs' content (e.g. a hash of the token
        ids: :func:`idest.utils.content_hash`). By default the batches are
        hashed (a one-shot iterator is first read into a list). Stored results
        are reused only when it, the model's weights (a SHA-256 over every
        tensor of its ``state_dict``), the sites, the reductions and the
        estimator settings all match; otherwise the affected sites are
        recomputed and a one-line warning says what changed.
    title : str, optional
        Title of the figure.
    progress : bool or None, default=None
        Progress bars for the capture and the estimates (None: on a terminal).
    keep_on_device : bool, default=False
        Keep the captured rows on the model's device (a GPU) and search them
        there (:func:`idest.capture`'s option of that name): no activation
        files, so an interrupted scan captures again the sites it had not
        estimated. By default they stream to ``out_dir/activations``.
    client : distributed.Client, optional
        Estimate the sites on this Dask cluster (``pip install 'idest[dask]'``):
        one task per site, each mapping its site's activation file (the workers
        must see ``out_dir``), its results stored by this process as it
        finishes; a site of :data:`SHARDED_SITE_ROWS` vectors or more is instead
        estimated here from a k-NN search sharded over the cluster
        (:func:`idest.neighbors.sharded_knn`). The table equals the in-process
        one. The capture stays in this process.

    Returns
    -------
    ScanResult

    Examples
    --------
    >>> import tempfile, torch, idest.scan
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
    >>> batches = [torch.rand(250, 3) for _ in range(2)]
    >>> result = idest.scan.layer_scan(net, batches, ["0", "2"], tempfile.mkdtemp(),
    ...                                reduce="flatten", mle_k=10)
    >>> [round(r["id"]) for r in result.rows if r["estimator"] == "twonn"]
    [3, 3]
    """
    out = Path(out_dir)
    if client is not None:
        check_client(client, "layer_scan")
        if keep_on_device:
            raise ValueError("layer_scan: with a client the workers read the activation files; "
                             "got keep_on_device=True, which keeps them in this process. Drop "
                             "one of client= and keep_on_device=.")
    resolved = resolve_sites(model, sites)
    reductions = per_site(resolved, reduce)
    _check_settings(ks, mle_k, n_bootstrap, random_state)
    (out / "activations").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    if inputs_id is None:  # the batches themselves identify the inputs
        if iter(batches) is batches:  # a one-shot iterator: kept to be hashed and captured
            batches = list(batches)
        inputs_id = {"batches": content_hash(batches)}
    model_id = {"class": type(model).__name__,
                "n_parameters": sum(p.numel() for p in model.parameters()),
                "weights": content_hash(model)}
    capture_keys = {s.name: json.loads(json.dumps(
        {"model": model_id, "inputs": inputs_id, "module": s.module, "input": s.capture_input,
         "reduce": repr(reductions[s.name])}, default=str)) for s in resolved}
    if isinstance(random_state, np.random.Generator):  # a seed that the key can record
        random_state = int(random_state.integers(2**63 - 1))
    estimate_key = {"ks": [int(k) for k in ks], "mle_k": mle_k, "n_bootstrap": n_bootstrap,
                    "random_state": random_state, "duplicates": "drop",
                    "code": _estimator_code()}
    if gride_range_max:
        estimate_key["gride_range_max"] = int(gride_range_max)

    rows: dict[str, list[dict]] = {}
    changed: dict[str, None] = {}
    curves: dict[str, dict] = {}
    for s in resolved:
        stored = read_json(out / "results" / f"{s.name}.json")
        key = {**capture_keys[s.name], **estimate_key}
        if stored and stored.get("key") == key:
            rows[s.name] = stored["rows"]
            if stored.get("gride"):
                curves[s.name] = stored["gride"]
        elif stored and isinstance(stored.get("key"), dict):
            changed.update(dict.fromkeys(_what_changed(stored["key"], key)))
    n_reused = len(rows)
    if changed:
        warnings.warn(f"layer_scan: {len(resolved) - n_reused} site(s) of {out} recomputed: "
                      f"the {', '.join(changed)} changed since they were stored.",
                      UserWarning, stacklevel=2)
    todo = [s for s in resolved if s.name not in rows]

    arrays = {}
    for s in todo:
        done = read_json(out / "activations" / f"{s.name}.done.json")
        if done == capture_keys[s.name]:
            arrays[s.name] = np.load(out / "activations" / f"{s.name}.npy", mmap_mode="r")
    missing = [s for s in todo if s.name not in arrays]
    if missing:
        captured = capture(model, batches, missing, reduce={s.name: reductions[s.name]
                                                            for s in missing},
                           out_dir=None if keep_on_device else out / "activations",
                           n_samples=n_samples, chunk_rows=CHECKPOINT_ROWS,
                           resume_key=None if keep_on_device else [capture_keys[s.name]
                                                                   for s in missing],
                           progress=progress, keep_on_device=keep_on_device)
        for s in missing:
            if s.name in captured and not keep_on_device:
                write_json(out / "activations" / f"{s.name}.done.json", capture_keys[s.name])
        arrays.update(captured)

    settings = {"ks": ks, "mle_k": mle_k, "n_bootstrap": n_bootstrap,
                "random_state": random_state, "gride_range_max": gride_range_max}
    ready = [s for s in todo if s.name in arrays]  # the others never ran (capture warned)
    with progress_bar(progress, total=len(todo), desc="estimate", unit="site") as bar:
        def store(site: Site, site_rows: list[dict], curve: dict | None) -> None:
            rows[site.name] = site_rows
            if curve is not None:
                curves[site.name] = curve
            write_json(out / "results" / f"{site.name}.json",
                       {"key": {**capture_keys[site.name], **estimate_key}, "rows": site_rows,
                        "gride": curve})
            if bar is not None:
                bar.update(1)

        if client is None:
            for s in ready:
                store(s, *_site_rows(arrays[s.name], s, **settings))
        else:
            large = [s for s in ready if arrays[s.name].shape[0] >= SHARDED_SITE_ROWS]
            small = [s for s in ready if s not in large]
            tasks = [(str(out.resolve() / "activations" / f"{s.name}.npy"), s, settings)
                     for s in small]
            with as_completed_units(client, _site_task, tasks, caller="layer_scan") as units:
                for s in large:  # its search shares the cluster with the small sites' tasks
                    store(s, *_site_rows(arrays[s.name], s, **settings, client=client))
                for i, result in units:
                    store(small[i], *result)

    table = [row for s in resolved for row in rows.get(s.name, [])]
    paths = out / "scan.csv", out / "scan.json", out / "scan.png"
    with atomic_write(paths[0]) as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    write_json(paths[1], table, indent=1)
    plot_scan(table, paths[2], title=title)
    gride_plot = None
    if gride_range_max:
        gride_plot = plot_gride_scan({s.name: curves[s.name] for s in resolved if s.name in curves},
                                     out / "scan_gride.png", title=title)
    return ScanResult(table, *paths, n_sites_reused=n_reused, gride_plot=gride_plot)


#: Display names of the estimators in figures.
ESTIMATOR_NAMES = {"twonn": "TwoNN", "knn_cdf": "k-NN CDF", "mle": "MLE",
                   "gride": "GRIDE plateau"}


def _series_label(kind: str, estimator: str, k: int, n_kinds: int) -> str:
    name = ESTIMATOR_NAMES.get(estimator, estimator)
    if estimator != "twonn":
        name = f"{name} n2≤{k}" if estimator == "gride" else f"{name} k={k}"
    return name if n_kinds == 1 else f"{kind}, {name}"


def scan_figure(rows: Sequence[Mapping[str, Any]], *, title: str | None = None,
                xlabel: str = "layer") -> Any:
    """The figure of :func:`plot_scan` as a :class:`matplotlib.figure.Figure` (no backend).

    Examples
    --------
    >>> rows = [{"kind": "hidden_states", "layer": i, "estimator": e, "k": k, "id": 10.0 + i,
    ...          "ci_low": 9.0 + i, "ci_high": 11.0 + i}
    ...         for i in range(3) for e, k in (("twonn", 2), ("knn_cdf", 3), ("mle", 20))]
    >>> fig = scan_figure(rows)
    >>> [len(ax.containers) for ax in fig.axes], fig.axes[0].get_legend_handles_labels()[1]
    ([2, 1], ['TwoNN', 'k-NN CDF k=3'])
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    valid = [r for r in rows if r.get("id") is not None]
    kinds = list(dict.fromkeys(r["kind"] for r in valid))
    palette = colormaps["tab10"]
    markers = "os^Dvp*"
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2, sharey=True)  # both panels show the same quantity
    for ax, family, label in ((axes[0], ("twonn", "knn_cdf", "gride"), "nearest neighbours"),
                              (axes[1], ("mle",), "MLE")):
        lines = sorted({(r["kind"], r["estimator"], r["k"]) for r in valid
                        if r["estimator"] in family},
                       key=lambda t: (kinds.index(t[0]), t[1] not in ("twonn", "gride"),
                                      t[2], t[1]))  # GRIDE beside TwoNN
        ks = list(dict.fromkeys(t[1:] for t in lines))  # (estimator, k): one style each
        xs = sorted({r["layer"] for r in valid if r["estimator"] in family})
        gap = float(np.min(np.diff(xs))) if len(xs) > 1 else 1.0
        step = 0.5 * gap / max(len(lines), 1)  # dodge: the series of one x side by side
        for i, (kind, estimator, k) in enumerate(lines):
            pts = sorted((r["layer"], r["id"], r["ci_low"], r["ci_high"]) for r in valid
                         if (r["kind"], r["estimator"], r["k"]) == (kind, estimator, k))
            x = np.array([p[0] for p in pts], float) + (i - (len(lines) - 1) / 2) * step
            y = np.array([p[1] for p in pts])
            err = None
            if all(p[2] is not None and p[3] is not None for p in pts):
                err = np.clip([[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], 0, None)
            style = ks.index((estimator, k))
            color = palette(kinds.index(kind) % 10) if len(kinds) > 1 else palette(style % 10)
            ax.errorbar(x, y, yerr=err, color=color, marker=markers[style % len(markers)],
                        ls=("-", "--", ":", "-.")[style % 4], ms=4, lw=1.2, capsize=2,
                        label=_series_label(kind, estimator, k, len(kinds)))
        if xs:
            ax.set_xticks(xs if len(xs) <= 16 else xs[:: -(-len(xs) // 16)])
        ax.set_xlabel(xlabel)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if lines:  # below the axes, never over the data
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncol=min(len(lines), 3), frameon=False)
    axes[0].set_ylabel("intrinsic dimension" + (" (95% interval)" if any(
        r.get("ci_low") is not None for r in valid) else ""))
    if title:
        fig.suptitle(title)
    return fig


def plot_scan(rows: Sequence[Mapping[str, Any]], path: str | Path, *, title: str | None = None,
              xlabel: str = "layer") -> Path:
    """ID against layer in the style of Sharma & Kaplan figure 10, saved to ``path``.

    Left panel: the nearest-neighbour estimates (TwoNN, the k-NN CDF for
    each k and, when the rows have it, GRIDE's plateau ID); right panel: the
    MLE, on the same y scale. One line per site kind and estimator (colour:
    the site kind, or the estimator and k when there is one kind; marker and
    dashes: the estimator and k), with bootstrap intervals as error bars when present, the
    estimators of one layer drawn side by side so that their bars do not
    overlap. ``xlabel`` names the x values (``"token position"`` for rows
    whose ``layer`` holds positions).

    Examples
    --------
    >>> import tempfile, os
    >>> rows = [{"kind": "hook_attn_out", "layer": i, "estimator": "twonn", "k": 2,
    ...          "id": 10.0 + i, "ci_low": None, "ci_high": None} for i in range(1, 4)]
    >>> os.path.getsize(plot_scan(rows, os.path.join(tempfile.mkdtemp(), "f.png"))) > 0
    True
    """
    path = Path(path)
    scan_figure(rows, title=title, xlabel=xlabel).savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_gride_scan(curves: Mapping[str, Mapping[str, Any]], path: str | Path, *,
                    title: str | None = None) -> Path:
    """GRIDE's ID against scale, one curve per site, with intervals and each plateau marked.

    x: the scale, n2 (log axis; the mean distance to the n2-th neighbour is
    in each curve's ``distances``); colour:
    the site's position in ``curves`` (dark to light: first to last layer);
    the plateau scales of each site are drawn with filled markers.

    Parameters
    ----------
    curves : mapping of str to dict
        Site name to :meth:`idest.GRIDEResult.to_dict` output.
    path : str or Path
        Where the PNG goes.
    title : str, optional

    Examples
    --------
    >>> import tempfile, os, warnings, idest
    >>> from idest.datasets import hypercube
    >>> curves = {f"layer {d}": idest.gride(hypercube(500, d, random_state=0), 16).to_dict()
    ...           for d in (2, 4)}
    >>> os.path.getsize(plot_gride_scan(curves, os.path.join(tempfile.mkdtemp(), "g.png"))) > 0
    True
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    for i, (site, c) in enumerate(curves.items()):
        color = cmap(i / max(1, len(curves) - 1))
        x, y = np.asarray(c["n2"]), np.asarray(c["dimensions"])
        low, high = np.asarray(c["intervals"], dtype=float).T
        # a percentile interval may leave out its point: never draw a bar on the wrong side
        err = np.clip([y - low, high - y], 0.0, None)
        ax.errorbar(x, y, yerr=err, color=color, marker="o", ms=3, mfc="white", lw=1, capsize=2,
                    label=site)
        if c["plateau_range"] is not None:
            on = (np.asarray(c["n2"]) >= c["plateau_range"][0]) & \
                 (np.asarray(c["n2"]) <= c["plateau_range"][1])
            ax.plot(x[on], y[on], "o", color=color, ms=5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("scale: neighbour order n2 (n1 = n2/2)")
    ax.set_ylabel("GRIDE intrinsic dimension")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=6, ncol=2 if len(curves) > 8 else 1)
    ax.set_title(title or "ID against scale (filled: plateau)", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
