"""Top-k re-evaluation's record and ranking (``search.reevaluate``; docs/search.md, "Re-evaluating the
best patterns"), without Ray.

A search trains every pattern with one training seed (common random numbers), so its best validation
reward is partly a lucky draw: the top patterns of a search are separated by less than one seed's
spread (docs/tasks.md). Before export, the ``top_k`` best finished patterns are trained on more seeds
(``autodropout.tune.reevaluate``); ``reevaluation.json`` in the run folder records
``{trial_id: [[seed, reward], ...]}`` (the search's own trial first), and export ranks those patterns
by their mean reward, ahead of the patterns that were not re-evaluated (which ranked below them on
the one seed they had).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from autodropout.core.atomic import atomic_write
from autodropout.runs.results import TrialRecord

SeedRewards = dict[str, list[tuple[int, float]]]


def candidates(records: list[TrialRecord], top_k: int) -> list[TrialRecord]:
    """The ``top_k`` best finished trials by their search reward, best first."""
    done = [r for r in records if r.status == "done" and r.reward is not None and math.isfinite(r.reward)]
    return sorted(done, key=lambda r: r.reward, reverse=True)[:top_k]


def save_reevaluation(path: Path, rewards: SeedRewards) -> Path:
    return atomic_write(path, json.dumps({k: [[s, r] for s, r in v] for k, v in rewards.items()}, indent=1) + "\n")


def load_reevaluation(path: Path) -> SeedRewards:
    """The record, or ``{}`` when the run has none (re-evaluation off, or not run yet)."""
    if not path.exists():
        return {}
    return {k: [(int(s), float(r)) for s, r in v] for k, v in json.loads(path.read_text()).items()}


def ranked(records: list[TrialRecord], rewards: SeedRewards, top: int) -> list[tuple[TrialRecord, float, tuple | None]]:
    """``(record, reward, seed rewards or None)`` of the ``top`` exported patterns, best first: the
    re-evaluated ones by their mean over seeds, then the others by their one reward."""
    done = [r for r in records if r.status == "done" and r.reward is not None]
    again = [(r, sum(v for _, v in rewards[r.trial_id]) / len(rewards[r.trial_id]), tuple(rewards[r.trial_id]))
             for r in done if rewards.get(r.trial_id)]
    once = [(r, r.reward, None) for r in done if not rewards.get(r.trial_id)]
    return (sorted(again, key=lambda x: x[1], reverse=True) + sorted(once, key=lambda x: x[1], reverse=True))[:top]
