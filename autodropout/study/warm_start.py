"""Where a warm-started arm of a study starts: the best tuned mask baseline of the same study.

A warm-started arm (``lstm-warm``, ``random-warm``) is ``autodropout search --start-from SPEC`` with
SPEC the tuned mask baseline (dropout, spatial/variational dropout, DropBlock, DropPath: the
regularizers a pattern can express, :data:`autodropout.tasks.baseline_pattern.MASKS`) whose tuning
reached the best validation reward on the searched task, at its best parameters. The choice needs
every mask tuning, so all of them count in the warm arms' cost (:func:`autodropout.study.results.cost_rows`).
It is made from the tunings' own rewards: the final evaluation runs after the warm searches.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from autodropout.study.baselines import tunable_baselines
from autodropout.study.plan import MAIN, StudyDir, StudyError, StudyPlan, is_warm
from autodropout.study.unit_results import WarmStart
from autodropout.tasks import task_class
from autodropout.tasks.baseline_pattern import MASKS

#: Where a mask baseline's granularity is given per space kind in :data:`MASKS`.
_SPACE_KEY = {"conv": "conv", "transformer": "span"}


def mask_baselines(plan: StudyPlan, baselines: tuple[str, ...] | None = None) -> list[str]:
    """The searched task's tuned baselines (or ``baselines``) that a pattern of its space can express."""
    key = _SPACE_KEY[task_class(plan.main.experiment.task.kind).space_type.kind]
    return [b for b in (plan.main.baselines if baselines is None else baselines) if key in MASKS.get(b, {})]


def check_warm(plan: StudyPlan) -> None:
    """A plan with warm arms needs a mask baseline to start from."""
    if any(is_warm(arm) for arm in plan.arms) and not mask_baselines(plan):
        masks = mask_baselines(plan, tuple(tunable_baselines(plan.main.experiment.task.kind)))
        raise StudyError(f"--arms {','.join(plan.arms)}: a warm-started arm starts from the best tuned mask "
                         f"baseline, and --baselines has none (add one of: {', '.join(masks)})")


def warm_start(study: StudyDir) -> WarmStart:
    """The start point (a ``--start-from`` spec), the baseline it comes from, that tuning's best
    validation reward, and the unit ids of every mask tuning consulted. Raises :class:`StudyError` when
    no mask tuning has a successful trial."""
    plan = study.plan
    best: tuple[float, str, Mapping[str, Any]] | None = None
    tunings = []
    for baseline in mask_baselines(plan):
        unit = plan.unit("tune", MAIN, baseline)
        tunings.append(unit.id)
        result = study.read_result(unit)
        found = None if result is None else result.best
        if found is not None and (best is None or found.reward > best[0]):
            best = (found.reward, baseline, found.trial.regularization.params)
    if best is None:
        raise StudyError(f"{study.path}: no tuned mask baseline has a successful trial to start the warm arms from")
    reward, baseline, params = best
    spec = baseline + (":" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items())) if params else "")
    return WarmStart(spec, baseline, reward, tuple(tunings))
