import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict:
    """Environment for a child ``python -m synthcore``: it imports the same synthcore as this test process (the
    installed build in CI, the source tree with its copied native module in development), never a tree
    without the compiled module, which would silently run the reference ops instead."""
    import synthcore

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(synthcore.__file__).resolve().parents[1])] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def shared_dir() -> Path:
    """The shared folder beside the checkout (CI clones with ../shared next to it); SYNTHCORE_SHARED overrides."""
    env = os.environ.get("SYNTHCORE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def testdata() -> Path:
    d = shared_dir() / "testdata"
    if not d.is_dir():
        raise FileNotFoundError(f"shared test data not found at {d}; set SYNTHCORE_SHARED to the shared folder")
    return d


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture(params=["generic", "avx2"])
def cpu_isa(request):
    """Run a native test with each compiled CPU variant the machine supports."""
    from synthcore._native import native_module

    mod = native_module()
    try:
        mod.set_cpu_isa(request.param)
    except ValueError:
        pytest.skip(f"CPU does not support {request.param}")
    yield request.param
    mod.set_cpu_isa("auto")


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
