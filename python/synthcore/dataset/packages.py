"""Import / export of the group-per-sample HDF5 layout of the published Idiap data packages.

That layout (identity_diffusion.md section 8): root attributes ``magic = "synthetics_collection"``, ``major = 2``,
``minor = 0``; one group per identity named ``{identity:05}``; inside it one group per sample named by its label
(``reference``, ``augmentation_0``, ...; ``/`` and spaces replaced by ``_``) with attributes ``network_type`` and
``embedding_type`` and the datasets, each optional and float32 with a leading axis of 1: ``w_latent`` (1, 512),
``w_plus_latent`` (1, num_ws, 512), ``z_latent`` (1, 512), ``c_label`` (1, 25), ``embedding`` (1, 512) (raw).
Its ``bfm_model`` subgroups (3D face-model fits) have no column here and are skipped on import, with a warning.

Import order is deterministic: identities by number, labels in natural order with ``reference`` first
(``augmentation_2`` before ``augmentation_10``), so importing the same file twice gives the same collection.
"""

import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import h5py
import numpy as np

from synthcore.dataset.collection import SampleCollection, check_label
from synthcore.fileio import atomic_path, open_hdf5
from synthcore.progress import Progress

__all__ = ["MAGIC", "export_package", "import_package"]

MAGIC = "synthetics_collection"
_VERSION = (2, 0)
# collection column -> package dataset name
_NAMES = {"w": "w_latent", "w_plus": "w_plus_latent", "z": "z_latent", "c": "c_label", "embedding": "embedding"}
_BLOCK = 4096  # samples per append on import


def _package_label(label: str) -> str:
    return label.replace("/", "_").replace(" ", "_")


def export_package(
    collection: SampleCollection,
    path: Union[str, Path],
    network_type: Optional[str] = None,
    embedding_type: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``collection`` in the group-per-sample layout at ``path``.

    ``network_type`` / ``embedding_type`` (the package's model names, e.g. ``stylegan2-256``, ``iresnet50``)
    default to the collection's options of those names, else to its generator / embedder file names.
    Written to a temporary file and renamed into place.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    opts, attrs = collection.options, collection.attrs
    net = network_type if network_type is not None else str(opts.get("network_type", attrs.get("generator", "")))
    emb = embedding_type if embedding_type is not None else str(opts.get("embedding_type", attrs.get("embedder", "")))
    cols = [c for c in collection.columns if c in _NAMES]
    labels_seen: Dict[Tuple[int, str], str] = {}
    with (
        atomic_path(path) as tmp,
        h5py.File(tmp, "w") as f,
        Progress(len(collection), "export", enabled=progress) as bar,
    ):
        f.attrs["magic"] = MAGIC
        f.attrs["major"], f.attrs["minor"] = _VERSION
        for _, block in collection.iter_batches(_BLOCK, ["identity", "label", *cols]):
            for i in range(len(block["identity"])):
                ident, label = int(block["identity"][i]), _package_label(block["label"][i])
                if (ident, label) in labels_seen:
                    raise ValueError(
                        f"labels {labels_seen[(ident, label)]!r} and {block['label'][i]!r} of identity {ident} "
                        "map to the same package name"
                    )
                labels_seen[(ident, label)] = block["label"][i]
                g = f.require_group(f"{ident:05}").create_group(label)
                g.attrs["network_type"] = net
                g.attrs["embedding_type"] = emb
                for c in cols:
                    g.create_dataset(_NAMES[c], data=block[c][i : i + 1].astype(np.float32))
            bar.update(len(block["identity"]))
    return path


def _natural_key(label: str) -> Tuple[int, List[Any]]:
    parts = re.split(r"(\d+)", label)
    return (0 if label == "reference" else 1, [int(p) if p.isdigit() else p for p in parts])


def _sample_groups(f: h5py.File) -> List[Tuple[int, str, h5py.Group]]:
    out = []
    for name in f:
        obj = f[name]
        if not isinstance(obj, h5py.Group):
            continue
        if not name.isdigit():
            raise ValueError(f"{f.filename}: group {name!r} is not an identity number")
        for label in sorted(obj, key=_natural_key):
            if isinstance(obj[label], h5py.Group):
                out.append((int(name), label, obj[label]))
    out.sort(key=lambda t: t[0])  # stable: labels keep their natural order within an identity
    return out


def import_package(
    path: Union[str, Path], out: Union[str, Path], overwrite: bool = False, progress: bool = True
) -> SampleCollection:
    """Read a group-per-sample file into a new columnar collection at ``out`` (returned open read-only).

    Columns: ``w`` (or ``w_plus`` when every sample has per-layer latents and not all have ``w_latent``),
    and ``z``, ``c``, ``embedding`` where every sample has them (a column only some samples have is dropped
    with a warning).
    """
    path = Path(path)
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} already exists")
    with open_hdf5(path, "HDF5 package collection") as f:
        magic = f.attrs.get("magic")
        if isinstance(magic, bytes):
            magic = magic.decode()
        if magic != MAGIC:
            raise ValueError(f"{path}: not a group-per-sample collection (magic {magic!r}, expected {MAGIC!r})")
        major = int(f.attrs.get("major", 0))
        if major != _VERSION[0]:
            raise ValueError(f"{path}: collection version {major}.x is not supported (expected {_VERSION[0]}.x)")
        samples = _sample_groups(f)
        if not samples:
            raise ValueError(f"{path}: the collection holds no samples")
        have = {col: sum(name in g for _, _, g in samples) for col, name in _NAMES.items()}
        n = len(samples)
        if have["w"] == n:
            space = "w"
        elif have["w_plus"] == n:
            space = "w_plus"
        else:
            raise ValueError(f"{path}: only {max(have['w'], have['w_plus'])} of {n} samples have a latent")
        optional = [c for c in ("z", "c", "embedding") if have[c] == n]
        dropped = [c for c in ("z", "c", "embedding") if 0 < have[c] < n] + (
            ["w_plus"] if space == "w" and have["w_plus"] else []
        )
        if dropped:
            warnings.warn(f"{path}: only some samples have {', '.join(dropped)}; not imported", stacklevel=2)
        if any("bfm_model" in g for _, _, g in samples):
            warnings.warn(f"{path}: bfm_model groups are not imported", stacklevel=2)
        first = samples[0][2]
        shapes = {c: tuple(first[_NAMES[c]].shape[1:]) for c in [space, *optional]}
        g0attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in first.attrs.items()}
        lat = shapes[space]
        coll = SampleCollection.create(
            out,
            w_dim=int(lat[-1]),
            num_ws=int(lat[0]) if space == "w_plus" else None,
            z_dim=int(shapes["z"][0]) if "z" in optional else None,
            c_dim=int(shapes["c"][0]) if "c" in optional else None,
            embedding_dim=int(shapes["embedding"][0]) if "embedding" in optional else None,
            options={
                "imported_from": path.name,
                "package_version": f"{major}.{int(f.attrs.get('minor', 0))}",
                "network_type": g0attrs.get("network_type", ""),
                "embedding_type": g0attrs.get("embedding_type", ""),
            },
            overwrite=overwrite,
        )
        try:
            with Progress(n, "import", enabled=progress) as bar:
                for lo in range(0, n, _BLOCK):
                    part = samples[lo : lo + _BLOCK]
                    data: Dict[str, np.ndarray] = {}
                    for c in [space, *optional]:
                        rows = []
                        for ident, label, g in part:
                            a = np.asarray(g[_NAMES[c]][()], dtype=np.float32)
                            if a.shape != (1, *shapes[c]):
                                raise ValueError(
                                    f"{path}: {ident:05}/{label}/{_NAMES[c]} has shape {list(a.shape)}, "
                                    f"expected {[1, *shapes[c]]} like the first sample"
                                )
                            rows.append(a)
                        data[c] = np.concatenate(rows)
                    labels = [check_label(label) for _, label, _ in part]
                    coll.append([ident for ident, _, _ in part], labels, **data)
                    bar.update(len(part))
            coll.close()
        except BaseException:
            coll.abort()
            raise
    return SampleCollection.open(out)
