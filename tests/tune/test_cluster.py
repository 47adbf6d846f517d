"""A real two-node Ray cluster on loopback: `autodropout search --address HOST:PORT` joins it."""
import csv
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON
from tests.tiny import write_experiment

pytestmark = pytest.mark.slow
RAY = str(Path(PYTHON).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args, env, tmp_path, name):
    # --block keeps the node's processes under one session we can end without `ray stop`, which
    # would stop every Ray instance on the machine.
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        time.sleep(1)
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], capture_output=True)


def test_search_joins_a_running_two_node_cluster(tmp_path, cli_env):
    """Also checks that a later local search is not captured by this cluster's address file."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"], cli_env,
                      tmp_path, "head")
    worker = None

    def active_nodes() -> int:
        status = subprocess.run([RAY, "status", f"--address={address}"], env=cli_env, capture_output=True, text=True)
        return status.stdout.split("Pending:")[0].count("node_") if status.returncode == 0 else 0

    try:
        deadline = time.time() + 120
        while active_nodes() < 1:
            assert time.time() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()
            time.sleep(1)
        worker = start_node([f"--address={address}", "--num-cpus=1"], cli_env, tmp_path, "worker")
        while active_nodes() < 2:
            assert time.time() < deadline and worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(1)

        experiment = write_experiment(tmp_path, {"search": {"storage_path": str(tmp_path / "shared")}})
        run_dir = tmp_path / "run"
        proc = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", "search", str(experiment),
                               "--address", address, "--output", str(run_dir)],
                              env=cli_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "search finished: 4 trials (0 failed)" in proc.stdout
        with open(run_dir / "trials.csv") as fh:
            assert [r["status"] for r in csv.DictReader(fh)] == ["done"] * 4
        # the Tune experiment lives on the configured (shared) storage, and the run folder says so
        assert list((tmp_path / "shared" / "trials").glob("trial_*/result.json"))
        assert (run_dir / "best_patterns.json").exists()
    finally:
        for node in (worker, head):
            if node is not None:
                stop(node)
        # `ray start --head` recorded this cluster as the machine's current one; `ray stop` would
        # clear that, but it also stops every other Ray instance here.
        from ray._common.utils import get_ray_address_file

        recorded = Path(get_ray_address_file(None))
        if recorded.exists() and recorded.read_text().strip().endswith(f":{port}"):
            recorded.unlink()


def test_local_trials_run_at_the_drivers_priority():
    # The raylet would start workers at nice 15, starving trials beside any busy process.
    script = ("import os, ray; from autodropout.tune.cluster import connect; connect(num_cpus=1); "
              "print(ray.get(ray.remote(lambda: os.nice(0)).remote()))")
    env = {k: v for k, v in os.environ.items() if k != "RAY_worker_niceness"}
    out = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == os.nice(0)
