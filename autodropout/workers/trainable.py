"""The Ray Tune function trainable: build the task, train with the suggested pattern, report.

A trial config carries either ``"pattern"`` (the searcher's suggestion, one JSON object per site) or
``"regularizer": {"name": ..., "params": {...}}`` (a registry entry, or ``"none"`` for nothing), so
``autodropout transfer`` trains its baselines with this same code. Every epoch reports the
validation metric and the reward with a checkpoint of the full training state, so a trial retried
after a failure resumes where it stopped instead of starting over.
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


def regularization_from_config(task: Any, config: dict[str, Any]) -> Regularization:
    """The trial's regularization: its ``"regularizer"`` entry if present, else its pattern."""
    spec = config.get("regularizer")
    if spec is None:
        return Regularization(pattern=pattern_from_config(task, config))
    if spec["name"] == "none":
        return Regularization.none()
    return Regularization(name=spec["name"], params=dict(spec.get("params") or {}))


def train_pattern(config: dict[str, Any], data: Any = None) -> None:
    """Tune function trainable. ``config`` = the searcher's suggestion merged over the constants
    ``{"task": <task config dict>, "space_values": {...}}`` (or a ``"regularizer"`` entry instead of
    the pattern, see the module docstring); ``data`` comes from the object store."""
    task = build_task(task_from_dict(config["task"]), data=data)
    regularization = regularization_from_config(task, config)
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

    task.fit(regularization, seed=config["seed"], on_epoch=report,
             resume_state=resume_state, progress=False)
