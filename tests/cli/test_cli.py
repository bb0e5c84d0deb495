import json
import subprocess
import sys

from synthcore.cli.main import main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["native_built"] is True
    assert d["cpu_isa_active"]
    assert "cuda_kernels_compiled" in d and "gpu_visible" in d


def test_info_text_via_module():
    out = subprocess.run([sys.executable, "-m", "synthcore", "info"], capture_output=True, text=True, check=True).stdout
    assert "native kernels: built" in out and "CUDA kernels:" in out and "GPU:" in out


def test_demo_end_to_end(tmp_path, capsys):
    outdir = tmp_path / "demo"
    assert main(["demo", "--outdir", str(outdir), "--size", "64", "--batch", "1", "--repeats", "1"]) == 0
    report = json.loads((outdir / "report.json").read_text())
    assert set(report["images"]) == {"zoneplate", "down4_naive", "down4_filtered", "up4_restored", "lrelu"}
    for path in report["images"].values():
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert report["parity"] and all(v < 1e-4 for v in report["parity"].values())
    assert "speed-up" in capsys.readouterr().out


def test_demo_rejects_bad_size(capsys, tmp_path):
    assert main(["demo", "--outdir", str(tmp_path), "--size", "30"]) == 1
    assert "--size must be" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
