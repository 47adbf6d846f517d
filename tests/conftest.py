import os
import sys
from pathlib import Path

import pytest
import torch

# One thread per test process: the suite runs on 2-core machines, often next to Ray workers.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Tests run on the device named by AUTODROPOUT_TEST_DEVICE (default cpu)."""
    return torch.device(os.environ.get("AUTODROPOUT_TEST_DEVICE", "cpu"))


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for CLI subprocesses: this interpreter's path, a private cache, quiet Ray."""
    env = dict(os.environ)
    env["AUTODROPOUT_CACHE"] = str(tmp_path / "cache")
    env["RAY_AUTH_MODE"] = "disabled"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable

