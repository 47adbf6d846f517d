"""A search's start point (``search.start_from``, ``--start-from``) as tokens of the searched space.

The spec was parsed and checked where it entered (:func:`autodropout.runs.experiment.parse_start_from`);
what needs the task is done here, once, when a search is created (the tokens are then recorded in the
run folder's ``run.json``, so a resumed search never resolves the spec again):

* a pattern file or shipped pattern name: its best pattern, mapped onto the task's sites by relative
  depth (:func:`autodropout.tasks.mapped_pattern.pattern_for_task`, as ``autodropout train --pattern``);
* a regularizer with parameters: the pattern of the space nearest to that regularizer placed where
  the baseline goes (:func:`autodropout.tasks.baseline_pattern.pattern_like`).

Either must then be a pattern of the searched space (its value sets, ``search.values``).
"""
from __future__ import annotations

from autodropout.core.errors import ConfigError, PatternError, UserInputError
from autodropout.runs.experiment import StartFrom
from autodropout.search_spaces import SearchSpace
from autodropout.tasks import Task
from autodropout.tasks.mapped_pattern import pattern_for_task

__all__ = ["StartPointError", "start_tokens"]


class StartPointError(ConfigError):
    """A start point that cannot be used on this search: no such pattern, another space, nothing near."""


def start_tokens(start: StartFrom, task: Task, space: SearchSpace) -> list[int]:
    """The tokens of ``space`` (the search space of ``task``) a search from ``start`` begins with.

    Raises:
        StartPointError: one line naming ``start_from`` and the spec, and why it does not fit.
    """
    try:
        if start.pattern is not None:
            pattern = pattern_for_task(task, start.pattern)
        else:
            from autodropout.tasks.baseline_pattern import pattern_like

            pattern = pattern_like(start.regularization(), space, task.site_layout,
                                   task.describe_sites(task.config).shapes)
    except UserInputError as exc:
        raise StartPointError(f"start_from {start.spec!r}: {exc}") from None
    try:
        return space.encode(pattern)
    except PatternError as exc:
        raise StartPointError(f"start_from {start.spec!r}: its pattern is not in this search's space "
                              f"(search.values): {exc}") from None
