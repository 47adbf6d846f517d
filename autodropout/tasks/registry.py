"""Task kinds register themselves, each with its config dataclass (fairseq's ``register_task``,
timm's ``@register_model``): adding a task is one new file in this package.

>>> @register_task
... class MyTask(Task):
...     kind = "my_task"
...     config_type = MyTaskConfig      # a frozen dataclass with ``kind`` and ``train`` fields
...     ...
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autodropout.core.config import from_dict
from autodropout.core.errors import ConfigError
from autodropout.core.registry import Registry

if TYPE_CHECKING:
    from autodropout.tasks.base import Task, TaskSites

_TASKS: Registry[type[Task]] = Registry("task kind")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` the task of ``cls.kind`` (its config: ``cls.config_type``)."""
    return _TASKS.register(cls.kind, cls)


def task_kinds() -> list[str]:
    """Sorted kinds of every registered task."""
    return _TASKS.names()


def task_class(kind: str) -> type[Task]:
    """The task class of ``kind``; an unknown kind lists the valid ones."""
    return _TASKS.get(kind)


def task_sites(config: Any) -> TaskSites | None:
    """What ``config``'s model looks like at its sites, from the config alone (no data loaded);
    ``None`` for a config of no registered kind."""
    kind = getattr(config, "kind", None)
    return _TASKS.get(kind).describe_sites(config) if kind in _TASKS else None


def task_config_from_dict(raw: Any, path: str = "task") -> Any:
    """The typed config of a ``task:`` mapping, chosen by its ``kind``; errors name ``path.key``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in _TASKS:
        raise ConfigError(f"{path}.kind: expected one of {task_kinds()}, got {kind!r}")
    return from_dict(_TASKS.get(kind).config_type, raw, path)
