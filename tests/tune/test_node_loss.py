"""A worker node lost mid-trial on a real two-node cluster (two ``ray start`` processes on loopback):
Ray retries the trial from its checkpoint on the node that is left, and the run records it as done,
with its reward, everywhere (issue 22's "Done when").

Unlike tests/tune/test_retried_trial_e2e.py, which kills one trial's process, this kills the whole
worker node (its raylet, object store and workers: a spot preemption or a crashed machine). The head
checks its nodes' health faster than Ray's default (15 s) so that the test takes a minute, not several.
"""
import contextlib
import os
import signal
import subprocess
import time

import pytest

import autodropout as ad
from tests.conftest import PYTHON
from tests.tune.test_cluster import RAY, free_port, start_node, stop
from tests.tune.test_search_e2e import read_table, result_lines, three_epoch_experiment

pytestmark = pytest.mark.slow


def wait_for_nodes(address: str, count: int, env: dict, nodes: list, tmp_path, deadline: float) -> None:
    while True:
        status = subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True)
        if status.returncode == 0 and status.stdout.split("Pending:")[0].count("node_") >= count:
            return
        dead = [n for n in nodes if n.poll() is not None]
        assert time.time() < deadline and not dead, (tmp_path / "head.log").read_text()[-3000:]
        time.sleep(0.5)


def test_a_trial_on_a_lost_worker_node_is_retried_on_the_head_and_recorded_done(tmp_path, cli_env):
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**cli_env, "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
    head = start_node(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"], env, tmp_path, "head")
    worker = search = None
    deadline = time.time() + 240
    try:
        wait_for_nodes(address, 1, env, [head], tmp_path, deadline)
        worker = start_node([f"--address={address}", "--num-cpus=1"], env, tmp_path, "worker")
        wait_for_nodes(address, 2, env, [head, worker], tmp_path, deadline)

        # One CPU per node and 2 trials at a time: one trial runs on each node.
        experiment = three_epoch_experiment(tmp_path, {"trials": 2, "concurrency": 2, "max_failures": 1,
                                                       "storage_path": str(tmp_path / "shared")})
        run_dir = tmp_path / "run"
        search = subprocess.Popen([PYTHON, "-m", "autodropout.commands.cli", "search", str(experiment),
                                   "--address", address, "--output", str(run_dir)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        trials = tmp_path / "shared" / "trials"
        while True:  # the trial on the worker node (its process is in that node's session) reports epoch 1
            on_worker = [(d, lines) for d in trials.glob("trial_*") if (lines := result_lines(d))
                         and _session(lines[0]["pid"]) == worker.pid]
            if on_worker:
                lost, lines = on_worker[0]
                break
            assert time.time() < deadline and search.poll() is None, search.communicate()
            time.sleep(0.05)
        assert [r["epoch"] for r in lines] == [1] and list(lost.glob("checkpoint_*"))
        time.sleep(0.2)  # let the driver register the checkpoint before the node goes
        subprocess.run(["pkill", "-9", "-s", str(worker.pid)], capture_output=True)  # the whole node, at once
        out, err = search.communicate(timeout=max(30.0, deadline - time.time()))
    finally:
        if search is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(search.pid, signal.SIGKILL)
        for node in (worker, head):
            if node is not None:
                stop(node)
        _forget_cluster(port)
    assert search.returncode == 0, err[-3000:]
    trial_id = lost.name.split("_")[2]
    assert f"{trial_id} failed; retrying from its last checkpoint" in out
    epochs = [r["epoch"] for r in result_lines(lost)]
    assert epochs[-1] == 3 and epochs == sorted(set(epochs)), epochs  # resumed, not restarted
    table = {r["trial_id"]: r for r in read_table(run_dir)}
    assert table[trial_id]["status"] == "done" and table[trial_id]["epochs"] == "3"
    reward = float(table[trial_id]["reward"])
    assert reward == pytest.approx(result_lines(lost)[-1]["reward"])
    assert "search finished: 2 trials (0 failed)" in out
    exported = {p.trial_id: p.reward for p in ad.load_patterns(run_dir / "best_patterns.json").patterns}
    assert exported[trial_id] == pytest.approx(reward)


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def _forget_cluster(port: int) -> None:
    """`ray start --head` recorded this cluster as the machine's current one (see test_cluster.py)."""
    from pathlib import Path

    from ray._common.utils import get_ray_address_file

    recorded = Path(get_ray_address_file(None))
    if recorded.exists() and recorded.read_text().strip().endswith(f":{port}"):
        recorded.unlink()
