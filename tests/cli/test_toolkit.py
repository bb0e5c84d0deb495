"""synthcore.cli.toolkit: option types, device and model-file resolution, one-line errors, no command imports
another."""

import argparse
import ast
import hashlib
from pathlib import Path

import pytest
import torch

from synthcore.cli import toolkit
from synthcore.cli.toolkit import UserError

CLI = Path(toolkit.__file__).parent
SHARED = {"toolkit", "identity_common", "main", "__init__"}  # not commands


def test_finite_float():
    assert toolkit.finite_float("0.7") == 0.7 and toolkit.finite_float("-1e3") == -1000.0
    for bad in ("nan", "NaN", "inf", "-inf", "1e999"):
        with pytest.raises(argparse.ArgumentTypeError, match="finite"):
            toolkit.finite_float(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number"):
        toolkit.finite_float("abc")


def test_every_float_option_is_finite():
    from synthcore.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    floats = []
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.type is not float, f"synthcore {name} {action.option_strings}: use toolkit.finite_float"
            if action.type is toolkit.finite_float:
                floats.append((name, action.dest))
    assert ("generate", "trunc") in floats and ("references", "noise") in floats


def test_resolve_device():
    assert toolkit.resolve_device("cpu") == torch.device("cpu")
    assert toolkit.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UserError, match=rf"^--device cuda:7: no such CUDA device \({visible} visible\)$"):
        toolkit.resolve_device("cuda:7")
    if not visible:
        with pytest.raises(UserError, match=r"--device cuda: no such CUDA device \(0 visible\)"):
            toolkit.resolve_device("cuda")
    with pytest.raises(UserError, match="not a device"):
        toolkit.resolve_device("gpu0")
    with pytest.raises(UserError, match="cpu or cuda"):
        toolkit.resolve_device("meta")


def test_model_file_takes_a_path_or_an_installed_model_name(tmp_path, monkeypatch):
    f = tmp_path / "g.pt"
    f.write_bytes(b"x")
    assert toolkit.model_file("--network", str(f)) == f
    with pytest.raises(UserError, match=r"^--network .*missing\.pt: no such file"):
        toolkit.model_file("--network", str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="not a file"):
        toolkit.model_file("--network", str(tmp_path))

    models = pytest.importorskip("synthcore.models")  # the name lookup goes through the model registry

    class NotInstalled(FileNotFoundError):
        pass

    def model_path(name):
        if name == "installed-net":
            return f
        raise NotInstalled(f"model {name!r} is not installed; run: synthcore models install {name}")

    monkeypatch.setattr(models, "is_model_name", lambda name: name in ("installed-net", "absent-net"))
    monkeypatch.setattr(models, "model_path", model_path)
    assert toolkit.model_file("--embedder", "installed-net") == f
    with pytest.raises(UserError, match="^--embedder absent-net: .*synthcore models install absent-net"):
        toolkit.model_file("--embedder", "absent-net")


def test_recorded_model_file_checks_the_hash(tmp_path):
    f = tmp_path / "g.pt"
    f.write_bytes(b"weights")
    sha = hashlib.sha256(b"weights").hexdigest()
    made = "the samples were made with"
    assert toolkit.recorded_model_file("network", None, str(f), sha, False, made) == f
    assert toolkit.recorded_model_file("network", str(f), "", "", False, made) == f
    with pytest.raises(UserError, match="records no network file; pass --network"):
        toolkit.recorded_model_file("network", None, "", "", False, made)
    with pytest.raises(UserError, match="is not there; pass --network"):
        toolkit.recorded_model_file("network", None, str(tmp_path / "gone.pt"), sha, False, made)
    with pytest.raises(UserError, match=f"is not the generator {made} .*--ignore-hash"):
        toolkit.recorded_model_file("network", str(f), "", "0" * 64, False, made)
    assert toolkit.recorded_model_file("network", str(f), "", "0" * 64, True, made) == f


def test_parser_errors_are_one_line(capsys):
    p = toolkit.Parser(prog="synthcore x")
    p.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--n", "two"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("synthcore x: error: argument --n: invalid int value")


def test_report_error_is_one_line_and_debug_adds_the_traceback(capsys):
    try:
        raise ValueError("first line\nsecond line")
    except ValueError as exc:
        assert toolkit.report_error("embed", exc, debug=False) == 1
        assert capsys.readouterr().err == "synthcore embed: error: first line second line\n"
        assert toolkit.report_error("embed", exc, debug=True) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.endswith("error: first line second line\n")


def test_user_errors_are_not_bugs():
    from synthcore.dataset import RunDirLocked

    kinds = toolkit.user_errors()
    for exc in (UserError("x"), ValueError("x"), FileNotFoundError("x"), RunDirLocked(Path("."), {})):
        assert isinstance(exc, kinds)
    for exc in (KeyError("x"), AttributeError("x"), TypeError("x"), AssertionError(), RuntimeError("x")):
        assert not isinstance(exc, kinds)


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            if node.module == "synthcore.cli":
                yield from (f"synthcore.cli.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_no_command_module_imports_another():
    commands = {p.stem for p in CLI.glob("*.py")} - SHARED
    assert {"render", "embed", "generate", "references", "variations"} <= commands
    for name in commands | {"identity_common", "toolkit"}:
        imported = {
            m.rsplit(".", 1)[-1] for m in _imported_modules(CLI / f"{name}.py") if m.startswith("synthcore.cli.")
        }
        wrong = imported & (commands - {name})
        assert not wrong, f"cli/{name}.py imports the command module(s) {sorted(wrong)}"
