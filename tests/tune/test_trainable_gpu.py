"""A trial given a GPU (search.gpus_per_trial > 0) that sees no CUDA device fails at once, in one
line, instead of training on the CPU (train.device: auto); no Ray session is needed to check it."""
import json
import types

import pytest
import torch
from ray.tune.execution.placement_groups import PlacementGroupFactory

from autodropout.runs import Trial
from autodropout.runs.experiment import experiment_from_dict
from autodropout.tasks import Regularization
from autodropout.tune import trainable
from autodropout.tune.trainable import NoCudaError, check_cuda, train_trial
from tests.tiny import TINY_VISION


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_a_gpu_trial_without_cuda_fails_naming_the_setting_and_what_was_found(no_cuda, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    for device in ("auto", "cuda", "cuda:0"):
        with pytest.raises(NoCudaError) as caught:
            check_cuda(0.5, device)
        message = str(caught.value)
        assert message.startswith("search.gpus_per_trial is 0.5 but this trial's process has no usable CUDA device")
        assert f"torch {torch.__version__}" in message and "CUDA_VISIBLE_DEVICES='0'" in message
        assert f"train.device: {device}" in message and "\n" not in message


def test_nothing_to_check_without_gpus_on_the_cpu_or_with_cuda(no_cuda, monkeypatch):
    check_cuda(0, "auto")
    check_cuda(1, "cpu")  # asked for the CPU explicitly
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_cuda(1, "auto")


def test_the_trial_checks_its_ray_resources_before_building_anything(no_cuda, monkeypatch):
    context = types.SimpleNamespace(get_trial_resources=lambda: PlacementGroupFactory([{"CPU": 1, "GPU": 1}]))
    monkeypatch.setattr(trainable.tune, "get_context", lambda: context)

    def build_task(*args, **kwargs):
        raise AssertionError("the task was built")

    monkeypatch.setattr(trainable, "build_task", build_task)
    config = json.loads(json.dumps(Trial(experiment_from_dict(TINY_VISION).task, Regularization.none(), 0).to_config()))
    with pytest.raises(NoCudaError, match="search.gpus_per_trial is 1 "):
        train_trial(config)
