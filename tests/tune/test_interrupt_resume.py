"""Stopping a real CLI search with a signal to its process group, resuming it, and extending a finished one."""
import contextlib
import os
import signal
import subprocess
import time

import pytest
import ray
import torch

from autodropout.tune.search import resume_search
from tests.conftest import PYTHON
from tests.tiny import TINY_VISION, write_experiment
from tests.tune.test_search_e2e import autodropout, read_table, result_lines

pytestmark = pytest.mark.slow


def slow_trials(tmp_path, trials: int):
    """Trials of 3 epochs of about a second each, so that one is surely training when the signal comes."""
    return write_experiment(tmp_path, {
        "task": {**TINY_VISION["task"], "image_size": 16,
                 "train": {**TINY_VISION["task"]["train"], "epochs": 3, "batch_size": 16, "max_batches_per_epoch": 40}},
        "search": {"trials": trials, "concurrency": 2, "samples_per_update": 1}})


def session_processes(sid: int) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "sid=,comm="], capture_output=True, text=True).stdout.splitlines()
    return [line.split(None, 1)[1] for line in ps if line.split() and line.split()[0] == str(sid)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_stops_cleanly_and_resume_loses_no_trial(tmp_path, cli_env, sig):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([PYTHON, "-m", "autodropout.commands.cli", "search", str(slow_trials(tmp_path, 4)),
                             "--output", str(run_dir)], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    trials = run_dir / "trials"
    deadline = time.time() + 300
    try:
        # Once one trial has ended and another has checkpointed an epoch (Ctrl-C / kill -TERM -PGID).
        while time.time() < deadline:
            epochs = [[r["epoch"] for r in result_lines(d)] for d in trials.glob("trial_*")]
            if any(3 in e for e in epochs) and any(e and max(e) < 3 for e in epochs):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("search did not make progress")
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    table = read_table(run_dir)
    ended = sum(r["status"] == "done" for r in table)
    assert 1 <= ended < 4 and any(r["status"] == "incomplete" for r in table)
    assert err.strip().splitlines()[-1] == (f"interrupted after {ended} of 4 trials; "
                                            f"continue with: autodropout search --resume {run_dir}")
    assert f"search interrupted: {ended} of 4 trials ended (0 failed)" in out
    assert "Traceback" not in err and "Tuner.restore" not in err and "FAILED" not in out
    for _ in range(30):  # Ray's processes end with the driver (give the last ones a moment)
        if not session_processes(proc.pid):
            break
        time.sleep(0.5)
    assert not session_processes(proc.pid), "Ray processes outlived the stopped search"
    # The run folder is consistent: the controller state is the one a resume restores.
    saved = max(trials.glob("searcher-state-*.pkl"))
    assert (run_dir / "controller" / "state.pt").read_bytes() == saved.read_bytes()
    before = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert len(before["live"]) >= 1  # the interrupted trials are still the controller's

    resumed = autodropout("search", "--resume", run_dir, env=cli_env, timeout=400)
    assert "search finished: 4 trials (0 failed)" in resumed.stdout
    assert "resumed from its checkpoint" in resumed.stdout
    table = read_table(run_dir)
    assert [int(r["index"]) for r in table] == [1, 2, 3, 4] and len({r["trial_id"] for r in table}) == 4
    assert all(r["status"] == "done" for r in table)
    for folder in trials.glob("trial_*"):  # no epoch trained twice, none skipped
        assert [r["epoch"] for r in result_lines(folder)] == [1, 2, 3], folder.name
    after = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert len(after["history"]) == 4 and not after["live"] and after["trainer"]["step"] == 4


def test_resume_of_a_finished_search_says_so_and_extend_continues_the_controller(tmp_path, cli_env, capsys):
    experiment = write_experiment(tmp_path, {"search": {"trials": 2}})
    run_dir = tmp_path / "run"
    autodropout("search", experiment, "--output", run_dir, env=cli_env)
    before = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert before["trainer"]["step"] == 1 and before["num_suggested"] == 2  # samples_per_update 2

    # In this process, to see that Ray is not started for a run that has nothing left to do.
    summary = resume_search(run_dir)
    assert summary.status == "complete" and not ray.is_initialized()
    assert "search already complete: 2 of 2 trials ended (0 failed); nothing to resume" in capsys.readouterr().out
    with pytest.raises(ValueError, match="would shrink it"):
        resume_search(run_dir, trials=1)

    extended = autodropout("search", "--resume", run_dir, "--trials", 4, env=cli_env)
    assert "extending the search to 4 trials, 2 ended before" in extended.stdout
    assert "search finished: 4 trials (0 failed)" in extended.stdout
    table = read_table(run_dir)
    assert [int(r["index"]) for r in table] == [1, 2, 3, 4] and len({r["trial_id"] for r in table}) == 4
    assert all(r["status"] == "done" for r in table)
    after = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    # The restored controller went on: its update count and sample count grew from the saved ones,
    # and its first two trials are the ones it had before.
    assert after["trainer"]["step"] == 2 and after["num_suggested"] == 4
    assert [h["trial_id"] for h in after["history"][:2]] == [h["trial_id"] for h in before["history"]]
    assert "search:\n" in (run_dir / "config.yaml").read_text() and "trials: 4" in (run_dir / "config.yaml").read_text()
    again = autodropout("search", "--resume", run_dir, env=cli_env)
    assert "search already complete: 4 of 4 trials ended" in again.stdout
