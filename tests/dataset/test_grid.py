import numpy as np
import pytest
from PIL import Image

from synthcore.dataset.grid import face_grid, write_face_grid


def _write(path, value, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def test_grid_rows_are_identities_reference_first(tmp_path):
    images = tmp_path / "images_arcface"
    for ident in range(3):
        _write(images / f"{ident:05d}" / "augmentation_10.png", 100 + ident)
        _write(images / f"{ident:05d}" / "augmentation_2.png", 50 + ident)
        _write(images / f"{ident:05d}" / "reference.png", 10 + ident)
    grid = face_grid(images, gap=1)
    assert grid.shape == (3 * 7 + 1, 3 * 9 + 1, 3)
    for ident in range(3):
        y = 1 + ident * 7
        # natural order: reference, augmentation_2, augmentation_10
        assert [int(grid[y, 1 + c * 9, 0]) for c in range(3)] == [10 + ident, 50 + ident, 100 + ident]
    assert int(grid[0, 0, 0]) == 255  # the gap is white


def test_grid_limits_and_selection(tmp_path):
    images = tmp_path / "img"
    for ident in range(5):
        for k in range(4):
            _write(images / f"{ident:05d}" / f"augmentation_{k}.png", 20 * ident + k)
    grid = face_grid(images, identities=[1, 3], max_columns=2, gap=0)
    assert grid.shape == (12, 16, 3)
    assert int(grid[0, 0, 0]) == 20 and int(grid[6, 8, 0]) == 61


def test_grid_written_atomically_and_errors(tmp_path):
    images = tmp_path / "img"
    _write(images / "00000" / "reference.png", 7)
    out = write_face_grid(images, tmp_path / "grid.png")
    assert Image.open(out).size == (12, 10)
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="no image folder"):
        face_grid(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no <identity>/<image> files"):
        face_grid(tmp_path / "empty")


def test_grid_cells_scale_to_cell_size(tmp_path):
    images = tmp_path / "img"
    _write(images / "00000" / "reference.png", 90, size=(4, 4))
    grid = face_grid(images, cell_size=16, gap=0)
    assert grid.shape == (16, 16, 3) and int(grid[8, 8, 0]) == 90
    with pytest.raises(ValueError, match="cell_size"):
        face_grid(images, cell_size=0)
