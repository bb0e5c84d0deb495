"""The entry point's error handling: every error a user can cause by a file or an option is one line naming it
(``synthcore <command>: error: ...``) with a non-zero exit status; bugs keep their traceback; ``--debug`` shows it."""

import json
import random
import struct
import subprocess
import sys

import pytest
import torch

from synthcore.cli.main import build_parser, main
from synthcore.nets.persistence import PersistentRecord
from tests.conftest import subprocess_env
from tests.nets import hostile_snapshots as H
from tests.nets.sg2_data import pkl


def one_line_error(capsys, command: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one), without its prefix."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    prefix = f"synthcore {command}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix) :].strip()


def _generate(network, tmp_path, *extra):
    return main(["generate", "--network", str(network), "--seeds", "0", "--outdir", str(tmp_path / "out"), *extra])


def test_non_finite_float_options_are_refused(capsys):
    for argv in (
        ["generate", "--network", "g.pkl", "--seeds", "0", "--outdir", "o", "--trunc", "nan"],
        ["references", "--network", "g", "--embedder", "e", "--outdir", "o", "--noise", "inf"],
        ["variations", "--outdir", "o", "--latent-radius=-inf"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"synthcore {argv[0]}: error: argument --")
        assert "expected a finite number" in err


def test_non_finite_option_exit_status_of_the_process(tmp_path):
    """The real command line: one line on stderr, exit status 2, and no image written."""
    proc = subprocess.run(
        [sys.executable, "-m", "synthcore", "generate", "--network", str(pkl("sg2ada_r16_orig_gray")), "--seeds",
         "0", "--outdir", str(tmp_path / "out"), "--trunc", "nan"],
        capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("synthcore generate: error: argument --trunc: expected a finite number, got 'nan'")
    assert not (tmp_path / "out").exists()


def test_absent_device_is_one_line(tmp_path, capsys):
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    argv = ["embed", "--embedder", "e.pth", "--images", str(tmp_path), "--out", str(tmp_path / "e.h5")]
    assert main(argv + ["--device", "cuda:7"]) == 1
    assert one_line_error(capsys, "embed") == f"--device cuda:7: no such CUDA device ({visible} visible)"
    assert _generate(pkl("sg2ada_r16_orig_gray"), tmp_path, "--device", "cuda:7") == 1
    assert one_line_error(capsys, "generate") == f"--device cuda:7: no such CUDA device ({visible} visible)"


def _safetensors(path, header, body=b""):
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + body)
    return path


@pytest.mark.parametrize(
    "header, message",
    [
        ([1, 2], "not an object"),  # was AttributeError
        ({"t": 5}, "entry 't' is a JSON int"),  # was AttributeError
        ({"t": {"dtype": "F32", "shape": [1]}}, "data_offsets None"),  # was KeyError
        ({"t": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, "unsupported dtype"),  # was TypeError
        ({"t": {"dtype": "F32", "shape": ["a"], "data_offsets": [0, 4]}}, "shape ['a']"),  # was ValueError, no name
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "shape [-1]"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4]}}, "data_offsets [4]"),  # was ValueError, no name
        (
            {
                "__metadata__": {"format": "synthcore.generator/1", "config": 3},
                "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            "bad generator metadata",
        ),  # fmt: skip
    ],
)
def test_malformed_safetensors_headers(tmp_path, capsys, header, message):
    from synthcore.nets.generator_files import FORMAT

    if "__metadata__" in header:
        header["__metadata__"]["format"] = FORMAT
    bad = _safetensors(tmp_path / "bad.safetensors", header, b"\0" * 4)
    assert _generate(bad, tmp_path) == 1
    line = one_line_error(capsys, "generate")
    assert line.startswith(f"{bad}: ") and message in line
    emb = ["embed", "--embedder", str(bad), "--images", str(tmp_path), "--out", str(tmp_path / "e.h5")]
    (tmp_path / "x.png").write_bytes(b"")  # list_images needs one; the embedder fails first
    if "__metadata__" not in header:
        assert main(emb) == 1
        line = one_line_error(capsys, "embed")
        assert line.startswith(f"{bad}: ") and message in line


def test_hostile_snapshots_are_one_line(tmp_path, capsys):
    build = tmp_path / "build.pkl"  # a BUILD opcode on a network record (was AttributeError)
    H.write_snapshot(build, {"G_ema": H.WithState(PersistentRecord("Generator", {}), {"class_name": "x"})})
    names = tmp_path / "names.pkl"  # tensor names that are not text (was "'<' not supported between ...")
    rec = PersistentRecord("Generator", {"_parameters": {("a",): torch.ones(1), "b": torch.ones(1)}, "_buffers": {},
                                         "_modules": {}, "_init_args": (), "_init_kwargs": {}})  # fmt: skip
    H.write_snapshot(names, {"G_ema": rec})
    for path in (build, names):
        assert _generate(path, tmp_path) == 1
        assert one_line_error(capsys, "generate").startswith(f"{path}: ")


def test_damaged_snapshots_are_one_line_or_load(tmp_path, capsys):
    """Seeded byte flips and truncations of a real snapshot: each loads or fails with one line (naming the file
    when the file is unreadable; a flip may also give a readable network that the options do not fit)."""
    data = pkl("sg2ada_r16_orig_gray").read_bytes()
    rng = random.Random(0)
    path = tmp_path / "damaged.pkl"
    for case in range(12):
        blob = bytearray(data)
        if case % 3 == 2:
            blob = blob[: rng.randrange(1, len(blob))]
        else:
            for _ in range(2):
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(blob))
        rc = _generate(path, tmp_path, "--quiet")
        if rc != 0:
            assert rc == 1
            line = one_line_error(capsys, "generate")
            assert line.startswith(f"{path}: ") or "this network is" in line
        capsys.readouterr()


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    argv = ["embed", "--embedder", "e.pth", "--images", str(tmp_path), "--out", str(tmp_path / "e.h5")]
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        assert main(debug + ["--device", "cuda:7"]) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "resolve_device" in err
        assert err.strip().splitlines()[-1].startswith("synthcore embed: error: --device cuda:7")


def test_a_bug_keeps_its_traceback(monkeypatch):
    from synthcore.cli import info

    def broken():
        return {}["missing"]  # a KeyError is a bug, not a user error

    monkeypatch.setattr(info, "collect", broken)
    with pytest.raises(KeyError):
        main(["info"])


def test_embed_batch_option_and_its_old_spelling():
    parser = build_parser()
    base = ["embed", "--embedder", "e", "--images", "i", "--out", "o"]
    assert parser.parse_args(base).batch == 32 and parser.parse_args(base).device == "auto"
    assert parser.parse_args(base + ["--batch", "4"]).batch == 4
    assert parser.parse_args(base + ["--batch-size", "5"]).batch == 5
    sub = next(a for a in parser._actions if a.dest == "command")
    help_text = sub.choices["embed"].format_help()
    assert "--batch BATCH" in help_text and "--batch-size" not in help_text


def test_info_without_a_gpu_driver(monkeypatch, capsys):
    from synthcore.cli import info

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(info, "gpu_driver_found", lambda: False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "GPU:            none visible (no GPU driver found)" in out and "insufficient" not in out
