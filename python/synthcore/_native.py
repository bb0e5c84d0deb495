"""Loads the compiled module ``synthcore._C`` and reports what it was built with.

Nothing here imports torch: the native module is torch-free and receives arrays through DLPack.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

_import_error: BaseException | None = None
try:
    from synthcore import _C as _C_module
except ImportError as exc:  # a source checkout without a build, or a broken build
    _C_module = None
    _import_error = exc


def native_module() -> ModuleType:
    """The compiled module, or a RuntimeError explaining why it is not there."""
    if _C_module is None:
        raise RuntimeError(
            "synthcore's native module is not available "
            f"({_import_error}); reinstall with `pip install .` from the source tree"
        )
    return _C_module


def is_built() -> bool:
    return _C_module is not None


@functools.lru_cache(maxsize=1)
def build_info() -> dict[str, Any]:
    """What the native module was compiled with and what it finds on this machine."""
    if _C_module is None:
        return {"native": False, "error": str(_import_error)}
    info = dict(_C_module.build_info())
    info["native"] = True
    return info


def cuda_compiled() -> bool:
    return bool(build_info().get("cuda_compiled", False))
