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


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
