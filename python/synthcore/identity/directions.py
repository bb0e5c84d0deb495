"""Latent-directions files: named directions in W (pose, illumination, expressions, ...) for DisCo.

Format ``synthcore.latent_directions`` version 1, an HDF5 file:

- root attributes: ``format = "synthcore.latent_directions"``, ``version = 1``, ``w_dim``, ``names`` (the
  directions in order), and optionally ``generator`` / ``generator_sha256`` (the network the directions were fitted
  in), ``method`` (how they were obtained), ``synthcore_version``, ``created``;
- one group per direction, ``directions/<name>``, holding the dataset ``normal`` [w_dim] float32 (the direction;
  stored as given, used normalised) and the attributes ``category`` (``pose``, ``illumination``, ``expression`` or
  any other word: it picks the DisCo scale), ``neg_mean`` and ``pos_mean`` (mean projection of latents of the
  negative and positive class onto the unit normal; for a hyperplane through the origin neg_mean < 0 < pos_mean),
  and optionally ``neg_std``, ``pos_std``.

A linear classifier fitted on W latents of labelled images (e.g. Multi-PIE pose left/right, flash left/right,
neutral vs each expression) gives exactly these quantities; :func:`write_directions` writes them. DisCo's offset
along a direction is ``normal * scale(category) * max(-neg_mean, pos_mean)``, i.e. as far as the farther class
mean lies from the boundary.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import h5py
import numpy as np
import torch

from synthcore import __version__
from synthcore.fileio import atomic_path, open_hdf5

__all__ = ["FORMAT", "LatentDirection", "disco_offsets", "read_directions", "write_directions"]

FORMAT = "synthcore.latent_directions"
VERSION = 1


@dataclass
class LatentDirection:
    name: str
    category: str
    normal: torch.Tensor  # [w_dim]
    neg_mean: float
    pos_mean: float
    neg_std: Optional[float] = None
    pos_std: Optional[float] = None

    @property
    def extent(self) -> float:
        """How far the farther class mean lies from the boundary along the unit normal."""
        return max(-self.neg_mean, self.pos_mean)


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"direction names must be non-empty and contain no '/', got {name!r}")


def write_directions(
    path: Union[str, Path], directions: Sequence[LatentDirection], **attrs: Union[str, int, float]
) -> None:
    """Write ``directions`` (same w_dim) to ``path`` atomically; ``attrs`` become root attributes."""
    if not directions:
        raise ValueError("no directions to write")
    w_dim = int(directions[0].normal.numel())
    names = [d.name for d in directions]
    if len(set(names)) != len(names):
        raise ValueError(f"direction names must be unique, got {names}")
    for d in directions:  # every name and size is checked before anything is written
        _check_name(d.name)
        if d.normal.numel() != w_dim:
            raise ValueError(f"direction {d.name!r} has {d.normal.numel()} values, expected {w_dim}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(
            {
                "format": FORMAT,
                "version": VERSION,
                "w_dim": w_dim,
                "names": names,
                "synthcore_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        f.attrs.update(attrs)
        group = f.create_group("directions")
        for d in directions:
            g = group.create_group(d.name)
            g.create_dataset("normal", data=d.normal.detach().cpu().float().reshape(-1).numpy())
            g.attrs.update({"category": d.category, "neg_mean": float(d.neg_mean), "pos_mean": float(d.pos_mean)})
            for key in ("neg_std", "pos_std"):
                if getattr(d, key) is not None:
                    g.attrs[key] = float(getattr(d, key))


def read_directions(path: Union[str, Path], w_dim: Optional[int] = None) -> List[LatentDirection]:
    """Directions from a ``synthcore.latent_directions`` file, in file order; checks ``w_dim`` when given."""
    path = Path(path)
    with open_hdf5(path, "HDF5 latent-directions file") as f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise ValueError(f"{path}: format attribute is {fmt!r}, expected {FORMAT!r}")
        if int(f.attrs.get("version", 0)) != VERSION:
            raise ValueError(f"{path}: version {f.attrs.get('version')} is not supported (this reads {VERSION})")
        names = [str(n) for n in f.attrs.get("names", list(f.get("directions", {}).keys()))]
        out = []
        for name in names:
            if f"directions/{name}" not in f:
                raise ValueError(f"{path}: direction {name!r} is listed but has no group")
            g = f[f"directions/{name}"]
            normal = torch.from_numpy(np.asarray(g["normal"], dtype=np.float32).reshape(-1).copy())
            norm = float(normal.norm())
            if not np.isfinite(norm) or norm == 0:
                raise ValueError(f"{path}: direction {name!r} has a zero or non-finite normal")
            if w_dim is not None and normal.numel() != w_dim:
                raise ValueError(
                    f"{path}: direction {name!r} has {normal.numel()} values, the generator's w_dim is {w_dim}"
                )
            a = g.attrs
            out.append(
                LatentDirection(
                    name=name,
                    category=str(a.get("category", "other")),
                    normal=normal / norm,
                    neg_mean=float(a["neg_mean"]),
                    pos_mean=float(a["pos_mean"]),
                    neg_std=float(a["neg_std"]) if "neg_std" in a else None,
                    pos_std=float(a["pos_std"]) if "pos_std" in a else None,
                )
            )
    if not out:
        raise ValueError(f"{path}: holds no directions")
    return out


def disco_offsets(directions: Sequence[LatentDirection], scales: Optional[Dict[str, float]] = None) -> torch.Tensor:
    """[n, w_dim] DisCo offsets ``normal * scale(category) * extent``; ``scales`` maps category to scale (1 if
    absent)."""
    scales = scales or {}
    return torch.stack([d.normal * float(scales.get(d.category, 1.0)) * d.extent for d in directions])
