"""Import / export of the group-per-sample HDF5 layout of the published Idiap data packages."""

from pathlib import Path
from typing import Union

from synthcore.dataset.collection import SampleCollection

__all__ = ["export_package", "import_package"]


def export_package(
    collection: SampleCollection, path: Union[str, Path], network_type: str = "", embedding_type: str = ""
) -> Path:
    """Write ``collection`` in the group-per-sample layout (identity_diffusion.md section 8). (Being written.)"""
    raise NotImplementedError("export_package: being written (part B)")


def import_package(path: Union[str, Path], out: Union[str, Path], overwrite: bool = False) -> SampleCollection:
    """Read a group-per-sample file into a new columnar collection at ``out``. (Being written.)"""
    raise NotImplementedError("import_package: being written (part B)")
