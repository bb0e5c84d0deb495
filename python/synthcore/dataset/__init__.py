"""``synthcore.dataset``: what a run writes, and how it is written safely.

* ``collection``: ``SampleCollection``, the columnar ``samples.h5`` (latents, identities, labels, embeddings),
  and ``merge_collections`` for shards.
* ``stats``: ``stats.h5``, per-iteration statistics (``StatsFile``, ``read_stats``, ``write_stats``).
* ``checkpoint``: bit-exact state checkpoints and the newest complete one.
* ``rundir``: ``RunDir``, the run directory (writer lock, run record, finished stages, checkpoints per stage).
* ``render``: images ``images_<crop>/<identity:05d>/<label>.png`` and an NVlabs-style zip.
* ``packages``: import/export of the group-per-sample layout of the published data packages.
* ``plots``: statistics curves and similarity histograms, drawn with matplotlib (PNG, SVG or PDF).
"""

from synthcore.dataset.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from synthcore.dataset.collection import SampleCollection, check_label, merge_collections, sha256_file
from synthcore.dataset.packages import export_package, import_package
from synthcore.dataset.plots import plot_run, plot_similarity_histograms, plot_stats, similarity_histograms
from synthcore.dataset.render import RenderResult, crop_name, image_relpath, render_collection, write_dataset_zip
from synthcore.dataset.rundir import RunDir, RunDirLocked, StageFinished
from synthcore.dataset.stats import STAT_NAMES, StatsFile, read_stats, write_stats

__all__ = [
    "STAT_NAMES",
    "Checkpoint",
    "RenderResult",
    "RunDir",
    "RunDirLocked",
    "SampleCollection",
    "StageFinished",
    "StatsFile",
    "check_label",
    "crop_name",
    "export_package",
    "image_relpath",
    "import_package",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "merge_collections",
    "plot_run",
    "plot_similarity_histograms",
    "plot_stats",
    "read_stats",
    "render_collection",
    "save_checkpoint",
    "sha256_file",
    "similarity_histograms",
    "write_dataset_zip",
    "write_stats",
]
