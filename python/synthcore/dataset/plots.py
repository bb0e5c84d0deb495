"""Plots of a run, drawn with matplotlib: statistics curves (``stats*.h5``) and similarity histograms
(``samples.h5`` embeddings). PNG by default (for looking); SVG or PDF (``fmt``) for papers.

* ``plot_stats``: one line chart per family of statistics against the iteration: embedding angles
  ``dist_min/avg/max`` (over Langevin iterations the minimum angle between identities should rise),
  ``prop_ict``, W-space distances, distance to ``w_avg``, each force's row norms, the time step, angles to the
  reference (``refd_*``); any other statistic gets a chart of its own (``x_min/x_avg/x_max`` together).
  Statistics that are NaN throughout (e.g. Dispersion's ``timestep``) are left out. Every statistic on a chart
  is explained in the chart's caption (``STAT_DOCS``).
* ``similarity_histograms`` / ``plot_similarity_histograms``: cosine similarity of L2-normalised embeddings.
  *Inter-identity*: every pair of distinct identities, each identity represented by its ``reference`` sample
  (else its first). *Intra-identity*: every pair of samples of the same identity. Identities beyond
  ``max_identities`` are subsampled (seeded) to bound the O(N^2) inter-identity pass; the counts used are
  written in the caption and returned.

Figures are built as ``matplotlib.figure.Figure`` objects on an Agg canvas: no pyplot, no window, no change to
the backend of a session that imports synthcore. Style settings apply only inside ``rc_context`` blocks.
"""

import json
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from synthcore.dataset.collection import SampleCollection
from synthcore.dataset.stats import StatsFile
from synthcore.fileio import atomic_path, write_text_atomic

__all__ = [
    "FORMATS",
    "STAT_CHARTS",
    "STAT_DOCS",
    "plot_run",
    "plot_similarity_histograms",
    "plot_stats",
    "save_figure",
    "similarity_figure",
    "similarity_histograms",
    "stats_figure",
]

FORMATS = ("png", "svg", "pdf")
PNG_DPI = 150

# (file stem, title, y label, statistics)
STAT_CHARTS: Tuple[Tuple[str, str, str, Tuple[str, ...]], ...] = (
    ("angles", "Embedding angles", "angle (rad)", ("dist_min", "dist_avg", "dist_max")),
    ("prop_ict", "Pairs beyond the inter-class threshold", "fraction of pairs", ("prop_ict",)),
    ("latent_distance", "W-space distances", "L2 distance in W", ("w2wd_min", "w2wd_avg", "w2wd_max")),
    ("wavg", "Mean distance to w_avg", "L2 distance in W", ("wavg_avg",)),
    ("force_interaction", "Interaction force (row norms)", "force norm", ("intf_min", "intf_avg", "intf_max")),
    ("force_latent", "Latent force (row norms)", "force norm", ("latf_min", "latf_avg", "latf_max")),
    ("force_random", "Random force (row norms)", "force norm", ("rndf_min", "rndf_avg", "rndf_max")),
    ("force_total", "Total deterministic force (row norms)", "force norm", ("totf_min", "totf_avg", "totf_max")),
    ("timestep", "Time step", "dt", ("timestep",)),
    ("refd", "Angles to the reference", "angle (rad)", ("refd_min", "refd_avg", "refd_max")),
    ("ext_dist", "Angle to the external identities", "angle (rad)", ("ext_dist_min",)),
)

# What each statistic is: the charts' captions. ``{pairs}`` becomes "identities" for the reference stage
# (Langevin, ``stats.h5``) and "variations of one identity" for the variation stage (Dispersion,
# ``stats_variations.h5``), whose distance statistics are within each identity.
_FAMILY_DOCS = {
    "dist": "angle between the embeddings of two {pairs}",
    "w2wd": "L2 distance between the W latents of two {pairs}",
    "intf": "norm of a row's interaction force (Langevin: embedding repulsion between identities; "
    "Dispersion: pull of a variation's embedding back to its reference)",
    "latf": "norm of a row's latent force (Langevin: confinement towards w_avg; Dispersion: that plus the "
    "repulsion between the latents of variations)",
    "rndf": "norm of a row's random force eta*xi (before its sqrt(dt)/mu scaling)",
    "totf": "norm of a row's total deterministic force (interaction + latent), the drift of the update",
    "refd": "angle between a variation's embedding and its identity's reference embedding",
}
_SUFFIX_DOCS = {"min": "smallest", "avg": "mean", "max": "largest"}
STAT_DOCS: Dict[str, str] = {
    **{f"{fam}_{s}": f"{word} {doc}" for fam, doc in _FAMILY_DOCS.items() for s, word in _SUFFIX_DOCS.items()},
    "prop_ict": "fraction of pairs of {pairs} whose embedding angle is at or beyond the inter-class threshold "
    "(--ict, default 1.4 rad)",
    "wavg_avg": "mean L2 distance of the W latents to the generator's mean latent w_avg",
    "timestep": "step size dt of the iteration (adaptive: tau*mu*closest latent distance / largest force; "
    "Dispersion: the mean over identities)",
    "ext_dist_min": "smallest angle between an identity's embedding and any external (fixed) embedding",
    "prop_face": "fraction of {pairs} whose 8-bit frame holds a face to the landmark detector (landmark-aligned "
    "generators such as the DCGAN)",
    "face_refused": "moves refused in the step because they would have taken a face out of the detector's reach",
}

# Runs with a Euclidean embedder (dlib: same person below 0.6) record distances, not angles: the same charts,
# worded for that metric (stats files record it as ``metric`` "l2").
_EUCLIDEAN_WORDS = (
    ("Embedding angles", "Embedding distances"),
    ("Angles to the reference", "Distances to the reference"),
    ("Angle to the external identities", "Distance to the external identities"),
    ("angle (rad)", "Euclidean distance"),
    ("embedding angle", "embedding distance"),
    ("angle between", "Euclidean distance between"),
    ("smallest angle", "smallest Euclidean distance"),
)


def _for_metric(text: str, info: Dict[str, Any]) -> str:
    """Chart text for the run's identity metric: angles (default) or Euclidean distances, with its threshold."""
    if info.get("metric") not in ("l2", "euclidean"):
        return text
    for angle_words, distance_words in _EUCLIDEAN_WORDS:
        text = text.replace(angle_words, distance_words)
    ict = info.get("ict")
    return text.replace("(--ict, default 1.4 rad)", f"(--ict, {ict:g})" if isinstance(ict, (int, float)) else "(--ict)")


# Colour-blind-safe (Okabe-Ito) colours, in the order series are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "legend.framealpha": 0.9,
    "svg.fonttype": "none",  # SVG text stays text: searchable and editable in a paper's figure
    "svg.hashsalt": "synthcore",  # fixed element ids: the same data give the same SVG bytes
    "pdf.fonttype": 42,  # TrueType in PDFs (Type 3 fonts are refused by some publishers)
}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
_BINS = 100

# Figure geometry in inches: a fixed plot area with the caption underneath, so every chart looks alike.
_WIDTH, _PLOT_H, _TOP, _BOTTOM, _LEFT, _RIGHT = 8.0, 3.8, 0.55, 0.6, 0.85, 0.3
_CAPTION_CHARS, _CAPTION_LINE = 118, 0.14


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown plot format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def _figure(caption: Sequence[str], right: float = _RIGHT) -> Tuple[Figure, Any]:
    """A figure with one axes and ``caption`` (paragraphs, wrapped) underneath it."""
    lines: List[str] = []
    for para in caption:
        lines += textwrap.wrap(para, _CAPTION_CHARS, subsequent_indent="    ") or [""]
    cap_h = _CAPTION_LINE * len(lines) + (0.05 if lines else 0.0)
    height = _TOP + _PLOT_H + _BOTTOM + cap_h
    fig = Figure(figsize=(_WIDTH, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=_LEFT / _WIDTH, right=1 - right / _WIDTH, top=1 - _TOP / height, bottom=(_BOTTOM + cap_h) / height
    )
    ax = fig.add_subplot()
    if lines:
        fig.text(_LEFT / _WIDTH, 0.08 / height, "\n".join(lines), fontsize=8, color="#333333", va="bottom", ha="left")
    return fig, ax


def save_figure(fig: Figure, path: Union[str, Path], fmt: str = "png") -> Path:
    """Write ``fig`` to ``path`` in ``fmt`` (png, svg, pdf) atomically; return the path."""
    path = Path(path)
    _check_format(fmt)
    with matplotlib.rc_context(_STYLE), atomic_path(path, durable=False) as tmp:
        fig.savefig(tmp, format=fmt, dpi=PNG_DPI, metadata=_METADATA[fmt], facecolor="white")
    return path


# ------------------------------------------------------------------------------------------------ statistics


def _scope(stats_path: Path, info: Dict[str, Any]) -> str:
    """What the distance statistics of a stats file are over: pairs of identities, or of one identity's variations."""
    within = info.get("algorithm") in ("dispersion", "disco") or stats_path.stem.startswith("stats_variations")
    return "variations of one identity" if within else "identities"


def _doc(name: str, scope: str) -> str:
    doc = STAT_DOCS.get(name, "no description (a statistic this version of synthcore does not know)")
    return doc.replace("{pairs}", scope)


def _caption(names: Sequence[str], scope: str) -> List[str]:
    """One caption line per statistic; a known ``x_min/x_avg/x_max`` family shares one line."""
    stems = {n.rpartition("_")[0] for n in names}
    stem = next(iter(stems)) if len(stems) == 1 else ""
    suffixes = [n.rpartition("_")[2] for n in names]
    if len(names) > 1 and stem in _FAMILY_DOCS and all(x in _SUFFIX_DOCS for x in suffixes):
        words = " / ".join(_SUFFIX_DOCS[x] for x in suffixes)
        return [f"{' / '.join(names)}: the {words} {_FAMILY_DOCS[stem].replace('{pairs}', scope)}."]
    return [f"{n}: {_doc(n, scope)}." for n in names]


def stats_figure(
    iteration: np.ndarray,
    series: Dict[str, np.ndarray],
    title: str,
    ylabel: str,
    source: str,
    scope: str = "identities",
    info: Optional[Dict[str, Any]] = None,
) -> Figure:
    """A line chart of ``series`` (name -> values per iteration) with a caption explaining each statistic;
    ``info`` (the stats file's) words angles as Euclidean distances for runs with that metric."""
    names = list(series)
    info = info or {}
    title, ylabel = _for_metric(title, info), _for_metric(ylabel, info)
    caption = [_for_metric(line, info) for line in _caption(names, scope)]
    stems = {n.rpartition("_")[0] for n in names}
    stem = stems.pop() if len(stems) == 1 else ""
    band = bool(stem) and f"{stem}_min" in series and f"{stem}_max" in series
    notes = ["Shaded: the range between min and max."] if band else []
    if any(not np.isfinite(v).all() for v in series.values()):
        notes.append("Gaps: iterations without a value (e.g. no forces on the last row).")
    if notes:
        caption.append(" ".join(notes))
    angles = ylabel.startswith("angle")
    with matplotlib.rc_context(_STYLE):
        fig, ax = _figure(caption, right=0.85 if angles else _RIGHT)
        x = np.asarray(iteration, dtype=np.float64)
        marker = "o" if len(x) <= 40 else None
        styles = {"min": ("--", 1.4), "avg": ("-", 2.2), "max": (":", 1.8)}
        for i, n in enumerate(names):
            ls, lw = styles.get(n.rpartition("_")[2], ("-", 2.0))
            ax.plot(x, series[n], ls, lw=lw, color=PALETTE[i % len(PALETTE)], marker=marker, ms=3.5, label=n)
        if band:
            lo, hi = series[f"{stem}_min"], series[f"{stem}_max"]
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(x, lo, hi, where=ok, color=PALETTE[0], alpha=0.08, lw=0)
        ax.set_title(f"{title}\n", loc="left")
        ax.text(0, 1.02, source, transform=ax.transAxes, fontsize=9, color="#555555", va="bottom")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        # Iterations are whole numbers: never a tick between two of them.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(x):
            lo_x, hi_x = float(np.nanmin(x)), float(np.nanmax(x))
            pad = max(0.5, 0.02 * (hi_x - lo_x))
            ax.set_xlim(lo_x - pad, hi_x + pad)
        if ylabel == "fraction of pairs":
            ax.set_ylim(-0.03, 1.03)
        if angles:
            sec = ax.secondary_yaxis("right", functions=(np.degrees, np.radians))
            sec.set_ylabel("angle (degrees)")
        ax.legend(loc="best")
    return fig


def plot_stats(
    stats_path: Union[str, Path], outdir: Union[str, Path], prefix: str = "stats_", fmt: str = "png"
) -> List[Path]:
    """One line chart per statistic family of a stats file, ``<outdir>/<prefix><family>.<fmt>``."""
    _check_format(fmt)
    stats_path = Path(stats_path)
    with StatsFile.open(stats_path) as s:
        stats, info = s.read(), s.info
    it = stats.pop("iteration").astype(np.float64)
    scope = _scope(stats_path, info)
    outdir = Path(outdir)
    written: List[Path] = []
    charts = list(STAT_CHARTS) + _other_charts([n for n in stats if not any(n in c[3] for c in STAT_CHARTS)])
    for stem, title, ylabel, names in charts:
        series = {n: stats[n] for n in names if n in stats and np.isfinite(stats[n]).any()}
        if not series:
            continue
        fig = stats_figure(it, series, title, ylabel, f"{stats_path.name}, {len(it)} rows", scope, info)
        written.append(save_figure(fig, outdir / f"{prefix}{stem}.{fmt}", fmt))
    return written


def _other_charts(names: Sequence[str]) -> List[Tuple[str, str, str, Tuple[str, ...]]]:
    """Charts for statistics outside ``STAT_CHARTS``: ``x_min/x_avg/x_max`` share one chart, others get one each."""
    families: Dict[str, List[str]] = {}
    for n in names:
        stem, _, suffix = n.rpartition("_")
        families.setdefault(stem if stem and suffix in ("min", "avg", "max") else n, []).append(n)
    order = {"min": 0, "avg": 1, "max": 2}
    return [
        (stem, stem, "value", tuple(sorted(members, key=lambda m: order.get(m.rpartition("_")[2], 3))))
        for stem, members in families.items()
    ]


# ------------------------------------------------------------------------------------------------ similarity


def _representatives(identity: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Row of each identity's ``reference`` sample, else its first row; in identity order."""
    first: Dict[int, int] = {}
    ref: Dict[int, int] = {}
    for row, (i, s) in enumerate(zip(identity.tolist(), label.tolist())):
        first.setdefault(i, row)
        if s == "reference":
            ref.setdefault(i, row)
    return np.array([ref.get(i, first[i]) for i in sorted(first)], dtype=np.int64)


def similarity_histograms(
    collection: SampleCollection,
    embeddings: Optional[np.ndarray] = None,
    bins: int = _BINS,
    max_identities: int = 20000,
    seed: int = 0,
    block: int = 2048,
    metric: str = "cosine",
) -> Dict[str, Dict[str, object]]:
    """Histograms of inter- and intra-identity cosine similarity, or (``metric="euclidean"``, for embedders whose
    same-person test is a distance, like dlib's) Euclidean distance between the raw embeddings.

    ``embeddings``: [N, e] for the collection's rows (default: its ``embedding`` column). Returns
    ``{"inter": {...}, "intra": {...}}``, each with ``edges`` [bins+1], ``counts`` [bins], ``pairs``,
    ``identities``, ``mean``, ``min``, ``max`` (empty kinds have 0 pairs and NaN statistics).
    """
    cols = collection.read(columns=["identity", "label"])
    identity, label = cols["identity"], cols["label"]
    if embeddings is None:
        if "embedding" not in collection.columns:
            raise ValueError(f"{collection.path} has no embeddings (give --network and --embedder to compute them)")
        embeddings = collection.read(columns=["embedding"])["embedding"]
    if len(embeddings) != len(identity):
        raise ValueError(f"got {len(embeddings)} embeddings for {len(identity)} samples")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    if metric == "cosine":
        e = torch.nn.functional.normalize(e, dim=1)
        lo_edge, hi_edge = -1.0, 1.0
    else:  # no distance exceeds twice the largest norm (triangle inequality): the bins cover every pair
        lo_edge, hi_edge = 0.0, max(2.0 * float(e.norm(dim=1).max()) if len(e) else 1.0, 1e-6)
    edges = torch.linspace(lo_edge, hi_edge, bins + 1, dtype=torch.float64)
    rng = np.random.default_rng(seed)

    def pair_values(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b.T if metric == "cosine" else torch.cdist(a.double(), b.double())

    def histogram(values: torch.Tensor, acc: Dict[str, object]) -> None:
        v = values.double().clamp(lo_edge, hi_edge)
        if v.numel() == 0:
            return
        idx = ((v - lo_edge) * (bins / (hi_edge - lo_edge))).floor().long().clamp(0, bins - 1)
        acc["counts"] += torch.bincount(idx, minlength=bins).numpy()
        acc["pairs"] += int(v.numel())
        acc["sum"] += float(v.sum())
        acc["min"] = min(acc["min"], float(v.min()))
        acc["max"] = max(acc["max"], float(v.max()))

    def empty() -> Dict[str, object]:
        return {"counts": np.zeros(bins, np.int64), "pairs": 0, "sum": 0.0, "min": np.inf, "max": -np.inf}

    # Inter-identity: upper triangle of the representatives' cosine matrix, in row blocks.
    inter = empty()
    reps = _representatives(identity, label)
    total_identities = len(reps)
    if len(reps) > max_identities:
        reps = np.sort(rng.choice(reps, size=max_identities, replace=False))
    r = e[torch.from_numpy(reps)]
    for lo in range(0, len(reps), block):
        vals = pair_values(r[lo : lo + block], r)
        rows = torch.arange(lo, lo + vals.shape[0])[:, None]
        histogram(vals[torch.arange(len(reps))[None, :] > rows], inter)
    inter["identities"] = int(len(reps))
    inter["of_identities"] = int(total_identities)

    # Intra-identity: all pairs within each identity.
    intra = empty()
    order = np.argsort(identity, kind="stable")
    ids_sorted = identity[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    multi = 0
    for s, t in zip(starts.tolist(), ends.tolist()):
        if t - s < 2:
            continue
        multi += 1
        g = e[torch.from_numpy(order[s:t])]
        vals = pair_values(g, g)
        iu = torch.triu_indices(t - s, t - s, offset=1)
        histogram(vals[iu[0], iu[1]], intra)
    intra["identities"] = multi
    intra["of_identities"] = int(total_identities)

    out = {}
    for name, acc in (("inter", inter), ("intra", intra)):
        n = acc["pairs"]
        out[name] = {
            "metric": metric,
            "edges": edges.numpy(),
            "counts": acc["counts"],
            "pairs": n,
            "identities": acc["identities"],
            "of_identities": acc["of_identities"],
            "mean": acc["sum"] / n if n else float("nan"),
            "min": acc["min"] if n else float("nan"),
            "max": acc["max"] if n else float("nan"),
        }
    return out


def _density(h: Dict[str, object]) -> np.ndarray:
    counts = np.asarray(h["counts"], dtype=np.float64)
    width = float(np.diff(h["edges"])[0])
    return counts / (counts.sum() * width) if counts.sum() else counts


_KIND_NAMES = {"inter": "inter-identity", "intra": "intra-identity"}
_KIND_DOCS = {
    "inter": "Inter-identity: every pair of distinct identities, each represented by its reference sample "
    "({identities} identities{subsample}).",
    "intra": "Intra-identity: every pair of samples of the same identity ({identities} identities with two or more "
    "samples).",
}


def similarity_figure(
    hists: Dict[str, Dict[str, object]], kinds: Sequence[str], density: bool, threshold: Optional[float] = None
) -> Figure:
    """Histogram(s) of cosine similarity for ``kinds`` ("inter", "intra"): densities (areas 1, so kinds with
    different pair counts compare) or pair counts per bin; dashed lines at the means."""
    width = float(np.diff(hists[kinds[0]]["edges"])[0])
    euclidean = hists[kinds[0]].get("metric") == "euclidean"
    quantity = "Euclidean distance" if euclidean else "cosine similarity"
    if euclidean:
        caption = ["Euclidean distance between the raw face descriptors of two samples (0: identical)."]
        if threshold is not None:
            caption.append(f"Dotted line: the recogniser's same-person threshold {threshold:g} (closer: same person).")
    else:
        caption = ["Cosine similarity of the L2-normalised face embeddings of two samples (1: same direction)."]
    for k in kinds:
        h = hists[k]
        sub = ""
        if h.get("of_identities", h["identities"]) > h["identities"] and k == "inter":
            sub = f", a seeded subsample of {h['of_identities']}"
        caption.append(_KIND_DOCS[k].format(identities=h["identities"], subsample=sub))
    if density:
        caption.append(f"Density: the fraction of pairs per unit of {quantity}; each histogram's area is 1.")
    caption.append("Dashed lines: the means. Counts per bin in similarity.json.")
    with matplotlib.rc_context(_STYLE):
        fig, ax = _figure(caption)
        used = np.zeros(len(hists[kinds[0]]["counts"]), bool)
        for i, k in enumerate(kinds):
            h = hists[k]
            edges = np.asarray(h["edges"], np.float64)
            values = _density(h) if density else np.asarray(h["counts"], np.float64)
            used |= np.asarray(h["counts"]) > 0
            colour = PALETTE[i]
            label = f"{_KIND_NAMES[k]}: {h['pairs']:,} pairs, mean {round(h['mean'], 3) + 0.0:.3f}"
            ax.stairs(values, edges, fill=True, color=colour, alpha=0.3)
            ax.stairs(values, edges, color=colour, lw=1.5, label=label)
            ax.axvline(h["mean"], color=colour, ls="--", lw=1.2)
        edges = np.asarray(hists[kinds[0]]["edges"], np.float64)
        nz = np.flatnonzero(used)
        if nz.size:  # show the occupied range (with a margin), not the empty ends of the bins
            margin = 0.05 * (edges[-1] - edges[0])
            ax.set_xlim(max(edges[0], edges[nz[0]] - margin), min(edges[-1], edges[nz[-1] + 1] + margin))
        if euclidean and threshold is not None:
            ax.axvline(threshold, color="#000000", ls=":", lw=1.4)
        ax.set_ylim(bottom=0)
        if len(kinds) > 1:
            title = f"{quantity.capitalize()} of embeddings"
        else:
            title = f"{_KIND_NAMES[kinds[0]].capitalize()} {'distance' if euclidean else 'similarity'}"
        ax.set_title(title, loc="left")
        ax.set_xlabel(quantity)
        ax.set_ylabel("density" if density else f"pairs per bin (bin width {width:g})")
        if not density:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper left")
    return fig


def plot_similarity_histograms(
    samples_path: Union[str, Path],
    outdir: Union[str, Path],
    seed: int = 0,
    embeddings: Optional[np.ndarray] = None,
    max_identities: int = 20000,
    fmt: str = "png",
    metric: str = "cosine",
    threshold: Optional[float] = None,
) -> Dict[str, object]:
    """Write ``similarity.<fmt>`` (both histograms, as densities), ``similarity_inter.<fmt>``,
    ``similarity_intra.<fmt>`` (those with pairs) and ``similarity.json`` (counts and summary); return the summary
    with the written ``paths``. ``metric``: ``cosine`` or ``euclidean`` (``threshold``: the same-person distance,
    drawn as a line)."""
    _check_format(fmt)
    outdir = Path(outdir)
    with SampleCollection.open(samples_path) as coll:
        hists = similarity_histograms(coll, embeddings, max_identities=max_identities, seed=seed, metric=metric)
    paths: List[Path] = []
    present = [k for k in ("inter", "intra") if hists[k]["pairs"]]
    if present:
        fig = similarity_figure(hists, present, density=True, threshold=threshold)
        paths.append(save_figure(fig, outdir / f"similarity.{fmt}", fmt))
    for k in present:
        fig = similarity_figure(hists, [k], density=False, threshold=threshold)
        paths.append(save_figure(fig, outdir / f"similarity_{k}.{fmt}", fmt))
    summary = {
        k: {
            "metric": metric,
            "pairs": h["pairs"],
            "identities": h["identities"],
            "mean": h["mean"],
            "min": h["min"],
            "max": h["max"],
            "bin_edges": [float(x) for x in h["edges"]],
            "counts": [int(c) for c in h["counts"]],
        }
        for k, h in hists.items()
    }
    json_path = outdir / "similarity.json"
    write_text_atomic(json_path, json.dumps(summary, indent=1, allow_nan=True) + "\n", durable=False)
    paths.append(json_path)
    return {
        "paths": paths,
        **{k: {kk: v for kk, v in s.items() if kk not in ("bin_edges", "counts")} for k, s in summary.items()},
    }


def _stats_files(rundir: Path) -> Sequence[Path]:
    return sorted(p for p in rundir.glob("stats*.h5") if p.is_file())


def plot_run(
    rundir: Union[str, Path],
    outdir: Union[str, Path, None] = None,
    seed: int = 0,
    embeddings: Optional[np.ndarray] = None,
    max_identities: int = 20000,
    fmt: str = "png",
) -> List[Path]:
    """Every plot a run directory supports, into ``outdir`` (default ``<rundir>/plots``), as ``fmt`` files.

    Each ``stats*.h5`` gets its statistics charts (``stats.h5`` as ``stats_*.<fmt>``, ``stats_X.h5`` as
    ``stats_X_*.<fmt>``); ``samples.h5`` with embeddings (or given ``embeddings``) gets the similarity histograms.
    """
    _check_format(fmt)
    rundir = Path(rundir)
    outdir = rundir / "plots" if outdir is None else Path(outdir)
    written: List[Path] = []
    for p in _stats_files(rundir):
        written += plot_stats(p, outdir, prefix=f"{p.stem}_", fmt=fmt)
    samples = rundir / "samples.h5"
    if samples.is_file():
        with SampleCollection.open(samples) as coll:
            has = "embedding" in coll.columns
        if has or embeddings is not None:
            metric, threshold = _run_metric(rundir)
            written += plot_similarity_histograms(
                samples, outdir, seed, embeddings, max_identities, fmt, metric, threshold
            )["paths"]
    return written


def _run_metric(rundir: Path) -> Tuple[str, Optional[float]]:
    """How the run compared identities, from its reference statistics: ("euclidean", ict) for a distance metric
    (dlib), else ("cosine", None) (ArcFace-type angles, and runs without statistics)."""
    stats = rundir / "stats.h5"
    if stats.is_file():
        with StatsFile.open(stats) as s:
            info = s.info
        if info.get("metric") in ("l2", "euclidean"):
            ict = info.get("ict")
            return "euclidean", float(ict) if isinstance(ict, (int, float)) else None
    return "cosine", None
