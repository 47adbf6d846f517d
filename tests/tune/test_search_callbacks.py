"""The search's Tune callbacks and helpers on stand-in trials (no Ray instance): progress lines,
the checkpoint policy, the extendable search generator, the signal handling, released checkpoints."""
import json
import os
import pickle
import signal
import time
from types import SimpleNamespace

import pytest
from ray import tune
from ray.tune.search import Searcher

from autodropout.runs.plot import progress_series, running_window
from autodropout.tune import interrupt
from autodropout.tune.checkpoints import METRICS_FILE, STATE_FILE, KeepCheckpoints
from autodropout.tune.progress import SearchProgress
from autodropout.tune.trainable import ReleasedCheckpointError, _read_checkpoint
from autodropout.tune.tuner import ExtendableSearch, trial_dirname


def fake_trial(tmp_path, index, trial_id, status="RUNNING", reward=None, checkpoint=True):
    folder = tmp_path / f"trial_{index:05d}_{trial_id}" / "checkpoint_000000"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text("state")
    (folder / METRICS_FILE).write_text(json.dumps({"reward": reward, "epoch": 3}))
    return SimpleNamespace(trial_id=trial_id, experiment_tag=f"{index}_pattern=...", status=status,
                           last_result={} if reward is None else {"reward": reward, "accuracy": reward},
                           checkpoint=tune.Checkpoint(str(folder)) if checkpoint else None,
                           path=str(folder.parent))


def has_state(trial) -> bool:
    return os.path.exists(os.path.join(trial.checkpoint.path, STATE_FILE))


def test_progress_lines_are_numbered_in_sampling_order_with_eta(tmp_path, capsys):
    earlier = fake_trial(tmp_path, 1, "aaaa0001", status="TERMINATED", reward=0.5)
    second, third = fake_trial(tmp_path, 2, "aaaa0002"), fake_trial(tmp_path, 3, "aaaa0003", checkpoint=False)
    progress = SearchProgress(total=4, metric="accuracy", plot_file=tmp_path / "progress.png", title="t")
    progress = pickle.loads(pickle.dumps(progress))  # as Tune stores it in tuner.pkl
    progress.on_step_begin(0, trials=[earlier, second, third])
    progress.on_trial_start(0, [], trial=second)
    progress.on_trial_start(0, [], trial=third)
    time.sleep(0.05)
    third.last_result = {"reward": 0.75, "accuracy": 0.75}
    progress.on_trial_complete(1, [], trial=third)  # the 3rd sampled ends first
    progress.on_trial_error(2, [], trial=second)
    progress.on_experiment_end([])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[2/4] aaaa0002 resumed from its checkpoint") and "1 ended, 1 running" in lines[0]
    assert lines[1].startswith("[3/4] aaaa0003 started")
    assert lines[2].startswith("[3/4] aaaa0003 reward 0.7500  accuracy 0.7500")
    # No ETA until as many trials have ended as ran at once (2 here), then the bar's average rate.
    assert "best 0.7500 | 2 ended, 1 running" in lines[2] and lines[2].endswith("ETA -")
    assert lines[3].startswith("[2/4] aaaa0002 FAILED (error.txt in trial_00002_aaaa0002)")
    assert "3 ended, 0 running" in lines[3] and "ETA 00:0" in lines[3]
    assert (tmp_path / "progress.png").stat().st_size > 1000  # drawn in the background, waited for


def test_progress_series_best_and_running_mean():
    series = progress_series([(3, 0.5), (1, 0.2), (2, None), (4, 0.9), (5, float("nan"))], window=2)
    assert series == {"index": [1, 3, 4], "reward": [0.2, 0.5, 0.9], "best": [0.2, 0.5, 0.9],
                      "mean": [0.2, 0.35, 0.7], "failed": [2, 5]}
    assert running_window(24) == 4 and running_window(200) == 20 and running_window(10_000) == 50


@pytest.mark.parametrize("policy, kept", [("all", {"a", "b", "c", "d"}), ("none", set()), ("best", {"c", "d"})])
def test_checkpoint_policy(tmp_path, policy, kept):
    rewards = {"a": 0.3, "b": 0.5, "c": 0.9, "d": 0.7}
    trials = {tid: fake_trial(tmp_path, i, tid) for i, tid in enumerate("abcde", start=1)}
    callback = pickle.loads(pickle.dumps(KeepCheckpoints(policy, top_k=2)))
    callback.on_step_begin(0, trials=list(trials.values()))
    for tid in "abcd":
        trials[tid].status, trials[tid].last_result = "TERMINATED", {"reward": rewards[tid]}
        callback.on_trial_complete(0, [], trial=trials[tid])
    trials["e"].status = "ERROR"
    callback.on_trial_error(0, [], trial=trials["e"])
    assert {tid for tid, t in trials.items() if has_state(t)} == kept  # "b" was kept, then pushed out
    for trial in trials.values():  # a released checkpoint keeps its folder and the final metrics
        assert os.path.exists(os.path.join(trial.checkpoint.path, METRICS_FILE))


def test_checkpoint_policy_on_a_resumed_run_and_running_trials(tmp_path):
    ended = [fake_trial(tmp_path, i, f"t{i}", "TERMINATED", reward=r) for i, r in enumerate([0.4, 0.8, 0.6], start=1)]
    failed = fake_trial(tmp_path, 4, "t4", "ERROR")
    running = fake_trial(tmp_path, 5, "t5", "RUNNING")
    KeepCheckpoints("best", top_k=1).on_step_begin(0, trials=ended + [failed, running])
    assert [has_state(t) for t in ended + [failed, running]] == [False, True, False, False, True]


def test_a_released_checkpoint_reports_final_metrics_or_refuses_to_resume(tmp_path):
    folder = tmp_path / "checkpoint_000002"
    folder.mkdir()
    (folder / METRICS_FILE).write_text(json.dumps({"reward": 0.8, "epoch": 3}))
    assert _read_checkpoint(folder, epochs=3) == (None, {"reward": 0.8, "epoch": 3})
    with pytest.raises(ReleasedCheckpointError, match="cannot resume"):
        _read_checkpoint(folder, epochs=5)


class Counting(Searcher):
    def suggest(self, trial_id):
        return {}


def restored_state(tmp_path, total):
    """A saved generator state whose experiment was created in another folder (before a move)."""
    storage = SimpleNamespace(storage_filesystem=None, storage_fs_path=str(tmp_path / "old"))
    return {"counter": 4, "total_samples": total, "finished": False, "experiment": SimpleNamespace(storage=storage)}


def test_extendable_search_raises_the_restored_number_of_trials(tmp_path):
    generator = ExtendableSearch(Counting(metric="reward", mode="max"), trials=8, storage_path=str(tmp_path))
    generator.set_state(restored_state(tmp_path, 4))
    assert generator.total_samples == 8 and not generator.is_finished()
    same = ExtendableSearch(Counting(metric="reward", mode="max"), trials=4, storage_path=str(tmp_path))
    same.set_state(restored_state(tmp_path, 4))
    assert same.is_finished()
    assert trial_dirname(SimpleNamespace(experiment_tag="12_pattern=x", trial_id="abc")) == "trial_00012_abc"


def test_extendable_search_creates_its_trials_where_the_experiment_is_now(tmp_path):
    generator = ExtendableSearch(Counting(metric="reward", mode="max"), trials=8, storage_path=str(tmp_path / "new"))
    generator.set_state(restored_state(tmp_path, 4))
    storage = generator._experiment.storage
    assert storage.storage_fs_path == str(tmp_path / "new") and storage.storage_filesystem.type_name == "local"


def test_stop_on_signals(monkeypatch):
    calls = []
    tune_handler = lambda signum, frame: calls.append(signum)  # noqa: E731 - stands in for Tune's
    previous = signal.signal(signal.SIGUSR1, tune_handler)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with interrupt.stop_on_signals() as stop:
            assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
            with pytest.raises(KeyboardInterrupt):  # nothing running yet: stop at once
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            stop.signal = None
            stop.armed = True
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert interrupt.requested() == signal.SIGTERM and calls == [signal.SIGUSR1]
            interrupt.ForwardStop().on_step_begin(0, [])
            assert calls == [signal.SIGUSR1]  # forwarded once
            with pytest.raises(KeyboardInterrupt):  # a second request stops at once
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert {sig: signal.getsignal(sig) for sig in before} == before  # handlers put back as they were
        assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_stop_requested_before_tune_listens_is_forwarded_at_the_first_step():
    calls = []
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        with interrupt.stop_on_signals() as stop:
            stop.armed = True
            os.kill(os.getpid(), signal.SIGINT)  # Tune has not installed its handler yet
            time.sleep(0.1)
            signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
            interrupt.ForwardStop().on_step_begin(0, [])
            assert calls == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
