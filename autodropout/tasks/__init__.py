"""Tasks: data + model + train/eval loop + metric -> reward. Nothing here imports Ray.

Every module of this package that defines a task registers it (:func:`register_task`) and is
imported here, so adding a task is adding one file.

>>> from autodropout.runs.experiment import find_experiment
>>> from autodropout.tasks import build_task
>>> task = build_task(find_experiment("digits_wrn_quick").task)
>>> result = task.fit(epochs=1)
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from autodropout.tasks.base import Task, TaskSites
from autodropout.tasks.loop import DivergedError, EpochRecord, FitResult, TrainConfig, resolve_device
from autodropout.tasks.registry import register_task, task_class, task_config_from_dict, task_kinds, task_sites
from autodropout.tasks.regularization import Regularization
from autodropout.tasks.reward import reward

_INFRASTRUCTURE = {"base", "loop", "registry", "regularization", "reward"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def build_task(config: Any, data: Any = None) -> Task:
    """The task for a task config (``data`` may be shared, e.g. from Ray's object store)."""
    return task_class(config.kind)(config, data)


__all__ = [
    "DivergedError", "EpochRecord", "FitResult", "Regularization", "Task", "TaskSites", "TrainConfig", "build_task",
    "register_task", "resolve_device", "reward", "task_class", "task_config_from_dict", "task_kinds", "task_sites",
]
