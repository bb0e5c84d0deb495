"""SVG plots of a run: statistics curves and similarity histograms (no plotting library needed)."""

from pathlib import Path
from typing import Dict, List, Union

__all__ = ["plot_run", "plot_similarity_histograms", "plot_stats"]


def plot_stats(stats_path: Union[str, Path], outdir: Union[str, Path]) -> List[Path]:
    """One SVG line chart per statistic family of a ``stats.h5``. (Being written.)"""
    raise NotImplementedError("plot_stats: being written (part B)")


def plot_similarity_histograms(samples_path: Union[str, Path], outdir: Union[str, Path], seed: int = 0) -> Dict:
    """Histograms of inter- and intra-identity cosine similarity of the collection's embeddings. (Being written.)"""
    raise NotImplementedError("plot_similarity_histograms: being written (part B)")


def plot_run(rundir: Union[str, Path], outdir: Union[str, Path, None] = None, seed: int = 0) -> List[Path]:
    """Every plot a run directory supports, into ``<rundir>/plots``. (Being written.)"""
    raise NotImplementedError("plot_run: being written (part B)")
