"""A trial whose worker process dies (SIGKILL) after its first checkpoint is retried from it by Ray
(``search.max_failures``) and then counts as done everywhere: table, summary, best patterns.

Ray 2.60 leaves the retried trial's ``error.txt`` in its folder and writes ``done: false`` on every
``result.json`` line (docs/architecture.md, "What the Ray side relies on"), so this is what the records
must see through.
"""
import contextlib
import os
import signal
import subprocess
import time

import pytest

import autodropout as ad
from tests.tune.test_search_e2e import read_table, result_lines, start_search, three_epoch_experiment

pytestmark = pytest.mark.slow


def test_a_trial_killed_after_its_first_checkpoint_is_retried_and_counts_as_done(tmp_path, cli_env):
    # 2 trials of 3 epochs, long enough that the kill lands before the trial ends.
    experiment = three_epoch_experiment(tmp_path, {"trials": 2, "concurrency": 2, "max_failures": 1})
    run_dir = tmp_path / "run"
    proc = start_search(experiment, run_dir, cli_env, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        # The first trial to report epoch 1 (its checkpoint is written before the result reaches
        # result.json): kill the process that trains it, whose pid Ray records in every result.
        while time.time() < deadline:
            first = [(d, lines) for d in (run_dir / "trials").glob("trial_*") if (lines := result_lines(d))]
            if first:
                killed, lines = first[0]
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("no trial reported an epoch")
        assert [r["epoch"] for r in lines] == [1] and list(killed.glob("checkpoint_*"))
        time.sleep(0.2)  # let the driver register the checkpoint before the worker dies
        os.kill(lines[0]["pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    trial_id = killed.name.split("_")[2]

    # What Ray leaves: the failure recorded, the retry resumed from the checkpoint, no line says done.
    assert (killed / "error.txt").exists(), "the kill came too late: the trial had ended"
    assert f"{trial_id} failed; retrying from its last checkpoint" in out
    epochs = [r["epoch"] for r in result_lines(killed)]
    assert epochs[-1] == 3 and epochs == sorted(set(epochs)), epochs  # no epoch trained twice
    assert not any(r.get("done") for r in result_lines(killed))

    # What the run records: the trial is done, with its reward, in the table, the summary and the export.
    table = {r["trial_id"]: r for r in read_table(run_dir)}
    assert table[trial_id]["status"] == "done" and table[trial_id]["epochs"] == "3"
    reward = float(table[trial_id]["reward"])
    assert reward == pytest.approx(result_lines(killed)[-1]["reward"])
    assert all(r["status"] == "done" for r in table.values()) and len(table) == 2
    assert "search finished: 2 trials (0 failed)" in out
    exported = {p.trial_id: p.reward for p in ad.load_patterns(run_dir / "best_patterns.json").patterns}
    assert exported[trial_id] == pytest.approx(reward) and len(exported) == 2
