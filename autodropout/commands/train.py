"""``autodropout train``: one model, one regularization, validation and test metrics.

This is also how every hand-designed baseline is run, so a learned pattern and, say, DropBlock go
through exactly the same data, model, schedule and seed.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from autodropout.core.atomic import atomic_write
from autodropout.runs.experiment import ExperimentConfig
from autodropout.tasks import Regularization, Task, build_task
from autodropout.tasks.mapped_pattern import pattern_for_task


@dataclass
class TrainReport:
    experiment: str
    regularization: str
    seed: int
    epochs: int
    metric: str
    val: dict[str, float]
    test: dict[str, float]
    reward: float
    seconds: float
    seconds_per_epoch: float
    threads: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        fmt = lambda d: ", ".join(f"{k} {v:.4f}" for k, v in d.items())  # noqa: E731
        return (f"{self.experiment} with {self.regularization} (seed {self.seed}, {self.epochs} epochs, "
                f"{self.threads} thread{'s' * (self.threads != 1)}, {self.seconds_per_epoch:.1f}s/epoch)\n"
                f"  validation: {fmt(self.val)}\n  test:       {fmt(self.test)}")


def make_regularization(task: Task, regularizer: str | None = None, params: Mapping[str, Any] | None = None,
                        pattern_file: str | Path | None = None, rank: int = 1) -> Regularization:
    if pattern_file is not None:
        return Regularization(pattern=pattern_for_task(task, pattern_file, rank))
    if regularizer and regularizer != "none":
        return Regularization(name=regularizer, params=dict(params or {}))
    return Regularization.none()


def train_once(experiment: ExperimentConfig, regularizer: str | None = None, params: Mapping[str, Any] | None = None,
               pattern_file: str | Path | None = None, rank: int = 1, output: str | Path | None = None,
               task: Task | None = None, progress: bool | None = None) -> TrainReport:
    """Train ``experiment``'s task once and evaluate on validation and test."""
    task = task or build_task(experiment.task)
    regularization = make_regularization(task, regularizer, params, pattern_file, rank)
    began = time.perf_counter()
    result = task.fit(regularization, progress=progress)
    seconds = time.perf_counter() - began
    test = task.evaluate(result.model, "test")
    report = TrainReport(
        experiment=experiment.name, regularization=regularization.describe(),
        seed=experiment.task.train.seed, epochs=result.final.epoch, metric=task.metric,
        val=result.final.val, test=test, reward=result.final.reward, seconds=seconds,
        seconds_per_epoch=sum(r.seconds for r in result.history) / result.final.epoch,
        threads=torch.get_num_threads(),
        history=[asdict(r) for r in result.history],
    )
    if output is not None:
        atomic_write(output, json.dumps(asdict(report), indent=1) + "\n")
    return report
