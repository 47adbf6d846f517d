"""One thread policy: ``train.threads`` (default: the trial's CPUs) in every process that trains.

The Ray paths (search trials, parallel transfer) are checked in tests/tune/test_search_e2e.py
and tests/transfer/test_transfer.py::test_parallel_on_ray_matches_sequential.
"""
import json

import pytest
import torch
import yaml

from autodropout.commands.cli import main
from autodropout.runs.experiment import experiment_from_dict
from tests.tiny import TINY_VISION, write_experiment


@pytest.mark.parametrize("search, threads, expected", [
    ({}, None, 1),                              # cpus_per_trial defaults to 1
    ({"cpus_per_trial": 2.5}, None, 2),         # floored
    ({"cpus_per_trial": 0.5}, None, 1),         # at least 1
    ({"cpus_per_trial": 0, "gpus_per_trial": 1}, None, 1),
    ({"cpus_per_trial": 4}, 3, 3),              # given explicitly
])
def test_threads_default_to_the_trials_cpus(search, threads, expected):
    task = {**TINY_VISION["task"],
            "train": {**TINY_VISION["task"]["train"], **({"threads": threads} if threads else {})}}
    experiment = experiment_from_dict({"name": "x", "task": task, "search": search})
    assert experiment.task.train.threads == expected
    # What a run folder's config.yaml records reads back the same.
    assert experiment_from_dict(yaml.safe_load(experiment.to_yaml())).task.train.threads == expected


def test_train_sets_and_records_its_threads(tmp_path, capsys):
    experiment = write_experiment(tmp_path, {"task": {**TINY_VISION["task"], "train": {
        **TINY_VISION["task"]["train"], "epochs": 1}}})
    try:
        assert main(["train", str(experiment), "--threads", "2", "--output", str(tmp_path / "out.json")]) == 0
        assert torch.get_num_threads() == 2
        assert main(["train", str(experiment), "--output", str(tmp_path / "default.json")]) == 0
        assert torch.get_num_threads() == 1  # search.cpus_per_trial
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "1 epochs, 2 threads," in out and "1 epochs, 1 thread," in out
    assert json.loads((tmp_path / "out.json").read_text())["threads"] == 2
    assert json.loads((tmp_path / "default.json").read_text())["threads"] == 1
