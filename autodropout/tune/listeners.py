"""Listeners a searcher calls after each processed completion (``on_update``): the checkpoint of
the controller in the run folder, and a fan-out so that logging and checkpointing stay separate.

Both are picklable (the Tuner pickles the searcher with its listener)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearcherCheckpoint:
    """Saves the searcher's whole state to ``path`` (atomically) after every processed trial, so the
    run folder always holds the controller as of its latest completion."""

    path: Path

    def __call__(self, searcher: Any, stats: Any, history: list[dict[str, Any]]) -> None:
        searcher.save(str(self.path))


@dataclass(frozen=True)
class Broadcast:
    """Calls every listener in order; one that fails is logged and the others still run."""

    listeners: Sequence[Callable[[Any, Any, list[dict[str, Any]]], None]]

    def __call__(self, searcher: Any, stats: Any, history: list[dict[str, Any]]) -> None:
        for listener in self.listeners:
            try:
                listener(searcher, stats, history)
            except Exception:  # a listener must never fail a trial or stop the search
                logger.exception("searcher listener %s failed", type(listener).__name__)
