"""``search.scheduler: asha``: the settings, the scheduler Ray gets, a search and a study's tuning that it prunes.

docs/search.md, "Under a trial scheduler": a trial ASHA stops at a rung is recorded "stopped" with the
epoch it reached, never learned from and never exported; the run still ends with its trials.
"""
import json

import pytest

from autodropout.core.errors import ConfigError
from autodropout.runs.experiment import experiment_from_dict
from autodropout.study.request import make_plan
from tests.tiny import TINY_VISION, write_experiment
from tests.tune.test_search_e2e import autodropout, read_table


def experiment(search: dict, epochs: int = 12):
    return experiment_from_dict({**TINY_VISION, "task": {**TINY_VISION["task"],
                                                         "train": {**TINY_VISION["task"]["train"], "epochs": epochs}},
                                 "search": {**TINY_VISION["search"], **search}})


def test_asha_gets_its_rungs_on_our_epoch_key():
    from autodropout.tune.tuner import scheduler

    assert scheduler(experiment({}).search, 12) is None
    default = scheduler(experiment({"scheduler": "asha"}).search, 12)
    assert default._time_attr == "epoch" and default._max_t == 12
    assert [r for r, _ in default._brackets[0]._rungs] == [9]  # 3/4 of the schedule, one rung below 12
    asha = scheduler(experiment({"scheduler": "asha", "grace_period": 1, "reduction_factor": 2}, epochs=8).search, 8)
    assert sorted(r for r, _ in asha._brackets[0]._rungs) == [1, 2, 4, 8]  # a rung at the end stops nothing


@pytest.mark.parametrize("search, message", [
    ({"scheduler": "hyperband"}, "scheduler"),
    ({"scheduler": "asha", "grace_period": 12},
     r"search.grace_period: expected fewer epochs than task.train.epochs \(12\), got 12"),
    ({"scheduler": "asha", "grace_period": 0}, "grace_period: expected a positive value, got 0"),
    ({"scheduler": "asha", "reduction_factor": 1}, "reduction_factor: expected an int of at least 2, got 1"),
])
def test_bad_scheduler_settings_are_refused_naming_the_key(search, message):
    with pytest.raises(ConfigError, match=message):
        experiment(search)


def test_a_study_runs_its_arms_and_its_tunings_under_the_experiments_scheduler(tmp_path):
    path = write_experiment(tmp_path, {"search": {"scheduler": "asha", "grace_period": 1}, "task": {
        **TINY_VISION["task"], "train": {**TINY_VISION["task"]["train"], "epochs": 4}}})
    plan = make_plan(path, budget=2, search_seeds=1, eval_seeds=2)
    search = plan.main.experiment.search
    assert (search.scheduler, search.grace_period) == ("asha", 1)  # what every search and tuning unit reads


@pytest.mark.slow
def test_a_tuning_under_asha_records_stopped_trials_and_charges_their_epochs(tmp_path):
    import os

    import ray

    from autodropout.runs import read_trials
    from autodropout.tune.tuned import tune_regularizer

    exp = experiment({"scheduler": "asha", "grace_period": 1, "reduction_factor": 2}, epochs=4)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        folder = tune_regularizer(exp, "dropout", {"p": ["uniform", 0.0, 0.6]}, tmp_path / "tune", trials=8, seed=0)
    finally:
        ray.shutdown()
    records = read_trials(folder, "accuracy")
    assert len(records) == 8 and {r.status for r in records} == {"done", "stopped"}
    assert all(1 <= r.epochs < 4 for r in records if r.status == "stopped")
    assert all(r.epochs == 4 for r in records if r.status == "done")


@pytest.mark.slow
def test_an_asha_search_records_stopped_trials_and_exports_finished_ones(tmp_path, cli_env):
    path = write_experiment(tmp_path, {
        "task": {**TINY_VISION["task"], "train": {**TINY_VISION["task"]["train"], "epochs": 4}},
        "search": {"trials": 8, "samples_per_update": 1, "scheduler": "asha", "grace_period": 1,
                   "reduction_factor": 2}})
    run_dir = tmp_path / "run"
    proc = autodropout("search", path, "--output", run_dir, env=cli_env)
    table = read_table(run_dir)
    assert len(table) == 8 and {r["status"] for r in table} == {"done", "stopped"}
    stopped = [r for r in table if r["status"] == "stopped"]
    assert all(1 <= int(r["epochs"]) < 4 and r["reward"] for r in stopped)
    assert all(int(r["epochs"]) == 4 for r in table if r["status"] == "done")
    epochs = sum(int(r["epochs"]) for r in table)  # the cost in epochs, beside the seconds
    assert (f"search finished: 8 trials (0 failed, {len(stopped)} stopped early by the scheduler; {epochs} of 32 "
            "epochs trained)") in proc.stdout
    exported = json.loads((run_dir / "best_patterns.json").read_text())
    done = {r["trial_id"] for r in table if r["status"] == "done"}
    assert exported["patterns"] and {p["trial_id"] for p in exported["patterns"]} <= done
    # The controller saw every trial end, and learned from the finished ones only.
    import torch

    state = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert [h["status"] for h in state["history"]].count("stopped") == len(stopped)
    assert state["num_failed"] == 0
