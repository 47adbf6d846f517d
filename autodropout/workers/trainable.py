"""The Ray Tune function trainable: build the task, train with the suggested pattern, report.

Every epoch reports the validation metric and the reward with a checkpoint of the full training
state, so a trial retried after a failure resumes where it stopped instead of starting over.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from autodropout.config import task_from_dict
from autodropout.search_spaces import Pattern
from autodropout.tasks import EpochRecord, Regularization, build_task

STATE_FILE = "state.pt"


def pattern_from_config(task: Any, config: dict[str, Any]) -> Pattern:
    """Rebuild the suggested pattern from the trial config (validated against the task's space)."""
    space = task.search_space(config.get("space_values"))
    layers = tuple(
        space.layer_from_json(layer, where=f"site {i}: ") for i, layer in enumerate(config["pattern"])
    )
    pattern = Pattern(space.kind, layers)
    space.validate(pattern)
    return pattern


def train_pattern(config: dict[str, Any], data: Any = None) -> None:
    """Tune function trainable. ``config`` = the searcher's suggestion merged over the constants
    ``{"task": <task config dict>, "space_values": {...}}``; ``data`` comes from the object store."""
    task = build_task(task_from_dict(config["task"]), data=data)
    pattern = pattern_from_config(task, config)
    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state = torch.load(Path(folder) / STATE_FILE, weights_only=True)

    def report(record: EpochRecord, state: Any) -> None:
        metrics = {
            "reward": record.reward,
            task.metric: record.metric,
            "train_loss": record.train_loss,
            "epoch": record.epoch,
            "epoch_seconds": record.seconds,
        }
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state(), Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    task.fit(Regularization(pattern=pattern), seed=config["seed"], on_epoch=report,
             resume_state=resume_state, progress=False)
