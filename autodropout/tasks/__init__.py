"""Tasks: data + model + train/eval loop + metric -> reward. Nothing here imports Ray.

>>> from autodropout.config import find_experiment
>>> from autodropout.tasks import build_task
>>> task = build_task(find_experiment("digits_wrn_quick").task)
>>> result = task.fit(epochs=1)
"""
from __future__ import annotations

from typing import Any

from autodropout.config import TaskConfig
from autodropout.tasks.base import DivergedError, EpochRecord, FitResult, Task, resolve_device
from autodropout.tasks.regularization import Regularization
from autodropout.tasks.reward import reward


def task_class(kind: str) -> type[Task]:
    if kind == "vision":
        from autodropout.tasks.vision import VisionTask

        return VisionTask
    if kind == "language_model":
        from autodropout.tasks.language_model import LanguageModelTask

        return LanguageModelTask
    if kind == "translation":
        from autodropout.tasks.translation import TranslationTask

        return TranslationTask
    raise ValueError(f"unknown task kind {kind!r}; expected vision, language_model or translation")


def build_task(config: TaskConfig, data: Any = None) -> Task:
    """The task for a task config (``data`` may be shared, e.g. from Ray's object store)."""
    return task_class(config.kind)(config, data)


__all__ = [
    "DivergedError", "EpochRecord", "FitResult", "Regularization", "Task", "build_task",
    "resolve_device", "reward", "task_class",
]
