"""The Ray Tune function trainable: build the task, train the trial, report every epoch.

The config is a :class:`~autodropout.runs.trial.Trial` config (the searcher's suggestion merged
over the search's constants, or a grid cell of a transfer), so searches, transfers and studies
train with this same code. Every epoch reports the validation metric, the reward and the torch
thread count with a checkpoint of the full training state (``state.pt``) and of the reported metrics
(``metrics.json``), so a trial retried after a failure resumes where it stopped instead of starting
over. The trial trains with ``train.threads`` torch threads, as ``autodropout train`` does.

A trial given GPUs (``search.gpus_per_trial > 0``) that cannot use CUDA fails at once, before any
data or model is built: with ``train.device: auto`` it would otherwise train on the CPU, silently and
many times slower, while holding a GPU the cluster could give to another trial.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from autodropout.runs import Trial
from autodropout.tasks import EpochRecord, build_task
from autodropout.tasks.loop import set_threads
from autodropout.tune.checkpoints import METRICS_FILE, STATE_FILE

__all__ = ["METRICS_FILE", "STATE_FILE", "NoCudaError", "check_cuda", "train_trial"]


class ReleasedCheckpointError(RuntimeError):
    """The trial's checkpoint holds no training state (released after the trial had failed)."""


class NoCudaError(RuntimeError):
    """The trial was given GPUs but this process cannot use CUDA."""


def train_trial(config: dict[str, Any], data: Any = None) -> None:
    """Tune function trainable: ``config`` is a trial config; ``data`` comes from the object store."""
    trial = Trial.from_config(config)
    resources = tune.get_context().get_trial_resources()  # None outside a Tune session (unit tests)
    check_cuda(resources.required_resources.get("GPU", 0.0) if resources else 0.0, trial.task.train.device)
    set_threads(trial.task.train.threads)
    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state, final = _read_checkpoint(Path(folder), trial.task.train.epochs)
        if final is not None:
            # The trial had ended and its training state was released (tune/checkpoints.py), but
            # the driver stopped before recording that: report the final result again.
            tune.report(final)
            return
    task = build_task(trial.task, data=data)

    def report(record: EpochRecord, state: Any) -> None:
        metrics = {
            "reward": record.reward,
            task.metric: record.metric,
            "train_loss": record.train_loss,
            "epoch": record.epoch,
            "epoch_seconds": record.seconds,
            "threads": torch.get_num_threads(),
        }
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state(), Path(folder) / STATE_FILE)
            (Path(folder) / METRICS_FILE).write_text(json.dumps(metrics))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    task.fit(trial.regularization, seed=trial.seed, on_epoch=report, resume_state=resume_state, progress=False)


def check_cuda(gpus: float, device: str) -> None:
    """Raise :class:`NoCudaError` (one line: what was asked, what this process found) if the trial
    was given ``gpus`` > 0 GPUs but would not train on CUDA (``train.device`` ``auto`` or ``cuda...``)."""
    if gpus <= 0 or not (device == "auto" or device.startswith("cuda")) or torch.cuda.is_available():
        return
    build = f"torch {torch.__version__}, " + (f"built for CUDA {torch.version.cuda}" if torch.version.cuda
                                               else "a build without CUDA")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    raise NoCudaError(f"search.gpus_per_trial is {gpus:g} but this trial's process has no usable CUDA device "
                      f"({build}; CUDA_VISIBLE_DEVICES={visible!r}; train.device: {device}): install a CUDA build "
                      "of torch on the worker nodes, or set search.gpus_per_trial: 0 to train on CPUs")


def _read_checkpoint(folder: Path, epochs: int) -> tuple[Any, dict[str, Any] | None]:
    """``(training state, None)`` to resume from, or ``(None, final metrics)`` of a released one."""
    if (folder / STATE_FILE).exists():
        return torch.load(folder / STATE_FILE, weights_only=True), None
    metrics = json.loads((folder / METRICS_FILE).read_text()) if (folder / METRICS_FILE).exists() else {}
    if metrics.get("epoch", 0) >= epochs:
        return None, metrics
    raise ReleasedCheckpointError(f"checkpoint {folder.name} holds no training state (it was released after the "
                                  "trial had failed), so the trial cannot resume")
