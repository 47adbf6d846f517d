"""The Ray Tune function trainable: build the task, train the trial, report every epoch.

The config is a :class:`~autodropout.runs.trial.Trial` config (the searcher's suggestion merged
over the search's constants, or a grid cell of a transfer), so searches, transfers and studies
train with this same code. Every epoch reports the validation metric and the reward with a
checkpoint of the full training state, so a trial retried after a failure resumes where it stopped
instead of starting over.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from autodropout.runs import Trial
from autodropout.tasks import EpochRecord, build_task

STATE_FILE = "state.pt"


def train_trial(config: dict[str, Any], data: Any = None) -> None:
    """Tune function trainable: ``config`` is a trial config; ``data`` comes from the object store."""
    trial = Trial.from_config(config)
    task = build_task(trial.task, data=data)
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

    task.fit(trial.regularization, seed=trial.seed, on_epoch=report, resume_state=resume_state, progress=False)
