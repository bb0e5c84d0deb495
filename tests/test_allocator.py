import subprocess
import sys

import pytest

from tests.conftest import subprocess_env


def _child(env_extra: dict) -> str:
    env = subprocess_env()
    env.update(env_extra)
    code = "from synthcore.allocator import tune_allocator; print(tune_allocator())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_applies_on_linux_and_can_be_turned_off():
    assert _child({}).strip() == "True"
    assert _child({"SYNTHCORE_MALLOC_TUNING": "0"}).strip() == "False"
