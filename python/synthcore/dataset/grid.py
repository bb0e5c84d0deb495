"""Face grids: a run's rendered images tiled into one PNG, one identity per row (its reference, then variations).

A person checks a dataset by looking at it: whether the images are faces, whether a row looks like one person and
whether rows look like different people. The grid is made from the files that ``render`` wrote
(``images_<crop>/<identity:05d>/<label>.png``), so it shows exactly what a user of the dataset gets.
"""

import re
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from synthcore.fileio import atomic_path

__all__ = ["face_grid", "write_face_grid"]


def _natural_key(name: str) -> list:
    """``reference`` first, then labels in natural order (``augmentation_2`` before ``augmentation_10``)."""
    stem = Path(name).stem
    parts = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", stem)]
    return [stem != "reference", *[(0, p) if isinstance(p, int) else (1, p) for p in parts]]


def _identity_dirs(images_dir: Path, identities: Optional[Sequence[int]]) -> List[Path]:
    dirs = sorted(d for d in images_dir.iterdir() if d.is_dir() and d.name.isdigit())
    if identities is not None:
        wanted = {int(i) for i in identities}
        dirs = [d for d in dirs if int(d.name) in wanted]
    return dirs


def face_grid(
    images_dir: Union[str, Path],
    *,
    identities: Optional[Sequence[int]] = None,
    max_rows: int = 16,
    max_columns: int = 9,
    gap: int = 2,
    cell_size: Optional[int] = None,
) -> np.ndarray:
    """Tile the rendered images of ``images_dir`` into an [H, W, 3] uint8 array, one identity per row.

    Rows are the first ``max_rows`` identities (or ``identities``), columns the first ``max_columns`` images of
    each, reference first. Missing cells stay white; ``gap`` white pixels separate the cells. ``cell_size`` scales
    every image to that many pixels wide (bicubic; small frames are easier to judge enlarged), else the first
    image's size is used.
    """
    from PIL import Image

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"no image folder {images_dir}")
    if max_rows < 1 or max_columns < 1 or gap < 0 or (cell_size is not None and cell_size < 1):
        raise ValueError(
            f"max_rows, max_columns and cell_size must be >= 1 and gap >= 0, got {max_rows}, {max_columns}, "
            f"{cell_size}, {gap}"
        )
    rows = []
    for d in _identity_dirs(images_dir, identities)[:max_rows]:
        files = sorted(
            (f for f in d.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg")),
            key=lambda f: _natural_key(f.name),
        )
        if files:
            rows.append(files[:max_columns])
    if not rows:
        raise ValueError(f"{images_dir} holds no <identity>/<image> files to tile")
    with Image.open(rows[0][0]) as first:
        cell_w, cell_h = first.size
    if cell_size is not None:
        cell_w, cell_h = cell_size, max(1, round(cell_h * cell_size / cell_w))
    columns = max(len(r) for r in rows)
    grid = np.full((len(rows) * (cell_h + gap) + gap, columns * (cell_w + gap) + gap, 3), 255, dtype=np.uint8)
    for r, files in enumerate(rows):
        for c, f in enumerate(files):
            with Image.open(f) as im:
                cell = np.asarray(
                    im.convert("RGB").resize((cell_w, cell_h), Image.BICUBIC)
                    if im.size != (cell_w, cell_h)
                    else im.convert("RGB")
                )
            y, x = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
            grid[y : y + cell_h, x : x + cell_w] = cell
    return grid


def write_face_grid(images_dir: Union[str, Path], path: Union[str, Path], **options) -> Path:
    """Write :func:`face_grid` of ``images_dir`` as a PNG at ``path`` (atomically); returns ``path``."""
    from PIL import Image

    grid = face_grid(images_dir, **options)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path
