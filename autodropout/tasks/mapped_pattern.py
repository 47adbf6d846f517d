"""A pattern learned on one task, on another task's sites: the depth mapping of
:mod:`autodropout.patterns.mapping` into the task's own space (``autodropout train --pattern``,
``transfer``, ``--start-from`` and a study's imported patterns all go through here)."""
from __future__ import annotations

from pathlib import Path

from autodropout.patterns import load_patterns
from autodropout.patterns.mapping import map_pattern
from autodropout.search_spaces import Pattern, SearchSpace
from autodropout.tasks.base import Task


def pattern_for_task(task: Task, pattern_file: str | Path, rank: int = 1) -> Pattern:
    """Load a pattern file (or a shipped pattern by name) and map it onto ``task``'s sites (see
    :mod:`autodropout.patterns.mapping`)."""
    patterns = load_patterns(pattern_file)
    return pattern_onto_task(task, patterns.get(rank), patterns.space)[0]


def pattern_onto_task(task: Task, pattern: Pattern, space: SearchSpace) -> tuple[Pattern, SearchSpace]:
    """``pattern`` (from ``space``, learned on another task) mapped onto ``task``'s sites
    (:func:`autodropout.patterns.mapping.map_pattern`), and the space it now lives in: ``space``'s value sets at
    the task's numbers of sites and embedding sites. A pattern of another space kind is checked against
    the task's own space, which names the mismatch."""
    target = task.space_with(space.values, space.embedding_values) if pattern.kind == task.space_type.kind \
        else task.search_space()
    return map_pattern(pattern, target, task.site_layout.stacks), target
