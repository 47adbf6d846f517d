"""The trials table read back from trial folders (no Ray): statuses of retried and failed trials.

The folders are written as Ray 2.60 writes them (docs/architecture.md, "What the Ray side relies on"): every
``result.json`` line of a function trainable says ``done: false``, a trial retried after a failure keeps its
``error.txt`` even when it then completes, and the experiment state records each trial's status.
"""
import json

import pytest

from autodropout.commands.cli import main
from autodropout.runs import RunDir, Trial, read_trials
from autodropout.runs.experiment import experiment_from_dict
from autodropout.runs.results import TrialReadError
from autodropout.runs.summary import human_size
from autodropout.tasks import Regularization, build_task
from tests.tiny import TINY_VISION


def trial_folder(root, index, results, error=False):
    task = experiment_from_dict(TINY_VISION).task  # 2 epochs
    folder = root / f"trial_{index:05d}_id{index}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(Trial(task, Regularization.none(), 0).to_config()))
    (folder / "result.json").write_text("".join(json.dumps({**r, "trial_id": f"id{index}"}) + "\n" for r in results))
    if error:
        (folder / "error.txt").write_text("Failure # 1 (occurred at ...)\nRuntimeError: boom\n")
    return folder


def experiment_state(root, statuses, session="2026-01-02_03-04-05"):
    """An ``experiment_state-*.json`` as ``TuneController.save_to_dir`` writes it (the fields read here)."""
    trial_data = [[json.dumps({"trial_id": trial_id, "status": status}), json.dumps({})]
                  for trial_id, status in statuses.items()]
    (root / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": trial_data, "runner_data": {}}))


def epoch(e):
    return {"epoch": e, "reward": 0.5 + e / 10, "accuracy": 0.5 + e / 10, "done": False}


def test_statuses_of_done_retried_failed_and_running_trials(tmp_path):
    trial_folder(tmp_path, 1, [epoch(1), epoch(2)])
    trial_folder(tmp_path, 2, [epoch(1), epoch(2)], error=True)  # killed after epoch 1, retried from its checkpoint
    trial_folder(tmp_path, 3, [epoch(1)], error=True)  # failed for good
    trial_folder(tmp_path, 4, [epoch(1)])  # still running when the driver stopped
    records = read_trials(tmp_path, "accuracy")
    assert [(r.index, r.status, r.reward, r.epochs) for r in records] == [
        (1, "done", 0.7, 2), (2, "done", 0.7, 2), (3, "error", None, 1), (4, "incomplete", 0.6, 1)]


def test_the_experiment_state_says_which_trials_terminated_failed_or_go_on(tmp_path):
    # Trial 1 was stopped by a trial scheduler below its last epoch; trial 2 failed for good; trial 3 failed once and is
    # being retried; trial 4 was running; trial 5 was created after the state was saved and has failed.
    for index in (1, 2, 3):
        trial_folder(tmp_path, index, [epoch(1)], error=True)
    trial_folder(tmp_path, 4, [epoch(1)])
    trial_folder(tmp_path, 5, [epoch(1)], error=True)
    experiment_state(tmp_path, {"id1": "RUNNING", "id2": "RUNNING", "id3": "RUNNING", "id4": "RUNNING"},
                     session="2026-01-01_00-00-00")
    experiment_state(tmp_path, {"id1": "TERMINATED", "id2": "ERROR", "id3": "PENDING", "id4": "RUNNING"})  # newest
    records = read_trials(tmp_path, "accuracy")
    assert [(r.index, r.status, r.reward) for r in records] == [
        (1, "stopped", 0.6), (2, "error", None), (3, "incomplete", 0.6), (4, "incomplete", 0.6), (5, "error", None)]


def test_an_unreadable_experiment_state_leaves_the_results_to_judge(tmp_path):
    trial_folder(tmp_path, 1, [epoch(1), epoch(2)], error=True)
    (tmp_path / "experiment_state-2026-01-02_03-04-05.json").write_text('{"trial_data": [["{\\"tri')  # cut short
    assert [(r.status, r.reward) for r in read_trials(tmp_path, "accuracy")] == [("done", 0.7)]


def test_a_trial_whose_config_no_longer_validates_is_an_error_naming_its_folder(tmp_path):
    trial_folder(tmp_path, 1, [epoch(1), epoch(2)])
    bad = trial_folder(tmp_path, 2, [epoch(1), epoch(2)])
    config = json.loads((bad / "params.json").read_text())
    config["task"]["train"]["epochz"] = 2
    (bad / "params.json").write_text(json.dumps(config))
    with pytest.raises(TrialReadError, match=rf"^{bad}: cannot read the trial's params.json \(.*epochz.*\)$"):
        read_trials(tmp_path, "accuracy")
    (bad / "params.json").write_text('{"task": ')  # cut by a kill
    with pytest.raises(TrialReadError, match=rf"^{bad}: cannot read the trial's params.json"):
        read_trials(tmp_path, "accuracy")


def test_export_of_a_run_with_an_unreadable_trial_fails_in_one_line(tmp_path, capsys):
    experiment = experiment_from_dict(TINY_VISION)
    run = RunDir.create(tmp_path / "run", experiment, build_task(experiment.task).search_space(), "accuracy", 0)
    trial_folder(run.experiment_dir, 1, [epoch(1), epoch(2)])
    bad = trial_folder(run.experiment_dir, 2, [epoch(1), epoch(2)])
    (bad / "params.json").write_text("{}")
    assert main(["export", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autodropout: error: {bad}: cannot read the trial's params.json (") and err.count("\n") == 1
    assert not run.trials_table.exists() and not run.best_patterns.exists()


def test_human_size():
    assert [human_size(n) for n in (0, 1023, 1536, 14.5 * 2**20, 3 * 2**40)] == [
        "0 B", "1023 B", "1.5 KB", "14.5 MB", "3.0 TB"]


def test_the_study_progress_reads_trials_the_same_way(tmp_path):
    from autodropout.study.progress import ended_trials

    trial_folder(tmp_path, 1, [epoch(1), epoch(2)], error=True)  # retried, then finished: ended, not failed
    trial_folder(tmp_path, 2, [epoch(1)], error=True)  # being retried (the state says so): not ended yet
    trial_folder(tmp_path, 3, [epoch(1)], error=True)  # failed for good
    experiment_state(tmp_path, {"id1": "RUNNING", "id2": "PENDING", "id3": "ERROR"})
    assert [(name, errored) for name, _, _, errored in ended_trials(tmp_path, 2)] == [
        ("trial_00001_id1", False), ("trial_00003_id3", True)]
