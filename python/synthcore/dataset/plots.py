"""SVG plots of a run: statistics curves (``stats.h5``) and similarity histograms (``samples.h5`` embeddings).

* ``plot_stats``: one line chart per family of statistics against the iteration: embedding angles
  ``dist_min/avg/max`` (the minimum inter-identity angle should rise over Langevin iterations), ``prop_ict``,
  W-space distances, distance to ``w_avg``, each force's row norms, the time step; any other statistic gets a
  chart of its own (``x_min/x_avg/x_max`` together). Statistics that are NaN throughout (e.g. Dispersion's
  ``timestep``) are left out.
* ``similarity_histograms`` / ``plot_similarity_histograms``: cosine similarity of L2-normalised embeddings.
  *Inter-identity*: every pair of distinct identities, each identity represented by its ``reference`` sample
  (else its first). *Intra-identity*: every pair of samples of the same identity. Identities beyond
  ``max_identities`` are subsampled (seeded) to bound the O(N^2) inter-identity pass; the counts used are
  written on the chart and returned.
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from synthcore.dataset.collection import SampleCollection
from synthcore.dataset.stats import read_stats
from synthcore.dataset.svg import histogram_chart, line_chart
from synthcore.imageio import write_atomic

__all__ = [
    "STAT_CHARTS",
    "plot_run",
    "plot_similarity_histograms",
    "plot_stats",
    "similarity_histograms",
]

# (file stem, title, y label, statistics)
STAT_CHARTS: Tuple[Tuple[str, str, str, Tuple[str, ...]], ...] = (
    ("angles", "Embedding angles", "angle (rad)", ("dist_min", "dist_avg", "dist_max")),
    ("prop_ict", "Pairs beyond the inter-class threshold", "fraction of pairs", ("prop_ict",)),
    ("latent_distance", "W-space distances", "L2 distance", ("w2wd_min", "w2wd_avg", "w2wd_max")),
    ("wavg", "Mean distance to w_avg", "L2 distance", ("wavg_avg",)),
    ("force_interaction", "Interaction force (row norms)", "norm", ("intf_min", "intf_avg", "intf_max")),
    ("force_latent", "Latent force (row norms)", "norm", ("latf_min", "latf_avg", "latf_max")),
    ("force_random", "Random force (row norms)", "norm", ("rndf_min", "rndf_avg", "rndf_max")),
    ("force_total", "Total force (row norms)", "norm", ("totf_min", "totf_avg", "totf_max")),
    ("timestep", "Time step", "dt", ("timestep",)),
)
_BINS = 100


def _save(path: Path, svg: str) -> Path:
    write_atomic(path, svg.encode("utf-8"))
    return path


def plot_stats(stats_path: Union[str, Path], outdir: Union[str, Path], prefix: str = "stats_") -> List[Path]:
    """One SVG line chart per statistic family of a stats file, ``<outdir>/<prefix><family>.svg``."""
    stats = read_stats(stats_path)
    it = stats.pop("iteration").astype(np.float64)
    outdir = Path(outdir)
    written: List[Path] = []
    charts = list(STAT_CHARTS) + _other_charts([n for n in stats if not any(n in c[3] for c in STAT_CHARTS)])
    for stem, title, ylabel, names in charts:
        series = {n: (it, stats[n]) for n in names if n in stats and np.isfinite(stats[n]).any()}
        if not series:
            continue
        svg = line_chart(series, f"{title} ({Path(stats_path).name})", "iteration", ylabel)
        written.append(_save(outdir / f"{prefix}{stem}.svg", svg))
    return written


def _other_charts(names: Sequence[str]) -> List[Tuple[str, str, str, Tuple[str, ...]]]:
    """Charts for statistics outside ``STAT_CHARTS``: ``x_min/x_avg/x_max`` share one chart, others get one each."""
    families: Dict[str, List[str]] = {}
    for n in names:
        stem, _, suffix = n.rpartition("_")
        families.setdefault(stem if stem and suffix in ("min", "avg", "max") else n, []).append(n)
    order = {"min": 0, "avg": 1, "max": 2}
    return [
        (stem, stem, stem, tuple(sorted(members, key=lambda m: order.get(m.rpartition("_")[2], 3))))
        for stem, members in families.items()
    ]


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
) -> Dict[str, Dict[str, object]]:
    """Histograms of inter- and intra-identity cosine similarity.

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
    e = torch.nn.functional.normalize(torch.as_tensor(np.asarray(embeddings), dtype=torch.float32), dim=1)
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)
    rng = np.random.default_rng(seed)

    def histogram(values: torch.Tensor, acc: Dict[str, object]) -> None:
        v = values.double().clamp(-1.0, 1.0)
        if v.numel() == 0:
            return
        idx = ((v + 1.0) * (bins / 2.0)).floor().long().clamp(0, bins - 1)
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
    if len(reps) > max_identities:
        reps = np.sort(rng.choice(reps, size=max_identities, replace=False))
    r = e[torch.from_numpy(reps)]
    for lo in range(0, len(reps), block):
        cos = r[lo : lo + block] @ r.T
        rows = torch.arange(lo, lo + cos.shape[0])[:, None]
        histogram(cos[torch.arange(len(reps))[None, :] > rows], inter)
    inter["identities"] = int(len(reps))

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
        cos = g @ g.T
        iu = torch.triu_indices(t - s, t - s, offset=1)
        histogram(cos[iu[0], iu[1]], intra)
    intra["identities"] = multi

    out = {}
    for name, acc in (("inter", inter), ("intra", intra)):
        n = acc["pairs"]
        out[name] = {
            "edges": edges.numpy(),
            "counts": acc["counts"],
            "pairs": n,
            "identities": acc["identities"],
            "mean": acc["sum"] / n if n else float("nan"),
            "min": acc["min"] if n else float("nan"),
            "max": acc["max"] if n else float("nan"),
        }
    return out


def _density(h: Dict[str, object]) -> np.ndarray:
    counts = np.asarray(h["counts"], dtype=np.float64)
    width = float(np.diff(h["edges"])[0])
    return counts / (counts.sum() * width) if counts.sum() else counts


def plot_similarity_histograms(
    samples_path: Union[str, Path],
    outdir: Union[str, Path],
    seed: int = 0,
    embeddings: Optional[np.ndarray] = None,
    max_identities: int = 20000,
) -> Dict[str, object]:
    """Write ``similarity.svg`` (both histograms, as densities), ``similarity_inter.svg``,
    ``similarity_intra.svg`` (those with pairs) and ``similarity.json`` (counts and summary); return the summary
    with the written ``paths``."""
    outdir = Path(outdir)
    with SampleCollection.open(samples_path) as coll:
        hists = similarity_histograms(coll, embeddings, max_identities=max_identities, seed=seed)
    paths: List[Path] = []
    titles = {"inter": "Inter-identity similarity", "intra": "Intra-identity similarity"}
    notes = {
        k: f"{h['pairs']} pairs, {h['identities']} identities, mean {h['mean']:.3f}"
        for k, h in hists.items()
        if h["pairs"]
    }
    present = [k for k in ("inter", "intra") if hists[k]["pairs"]]
    if present:
        both = {titles[k].split()[0].lower(): (hists[k]["edges"], _density(hists[k])) for k in present}
        svg = histogram_chart(both, "Cosine similarity of embeddings", "cosine similarity", notes=list(notes.values()))
        paths.append(_save(outdir / "similarity.svg", svg))
    for k in present:
        h = hists[k]
        svg = histogram_chart(
            {k: (h["edges"], np.asarray(h["counts"], np.float64))},
            titles[k],
            "cosine similarity",
            "pairs",
            notes=[notes[k]],
        )
        paths.append(_save(outdir / f"similarity_{k}.svg", svg))
    summary = {
        k: {
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
    _save(outdir / "similarity.json", json.dumps(summary, indent=1, allow_nan=True))
    paths.append(outdir / "similarity.json")
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
) -> List[Path]:
    """Every plot a run directory supports, into ``outdir`` (default ``<rundir>/plots``).

    Each ``stats*.h5`` gets its statistics charts (``stats.h5`` as ``stats_*.svg``, ``stats_X.h5`` as
    ``stats_X_*.svg``); ``samples.h5`` with embeddings (or given ``embeddings``) gets the similarity histograms.
    """
    rundir = Path(rundir)
    outdir = rundir / "plots" if outdir is None else Path(outdir)
    written: List[Path] = []
    for p in _stats_files(rundir):
        written += plot_stats(p, outdir, prefix=f"{p.stem}_")
    samples = rundir / "samples.h5"
    if samples.is_file():
        with SampleCollection.open(samples) as coll:
            has = "embedding" in coll.columns
        if has or embeddings is not None:
            written += plot_similarity_histograms(samples, outdir, seed, embeddings, max_identities)["paths"]
    return written
