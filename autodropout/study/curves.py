"""The budget curve of a study (``autodropout study ... --budgets 16,48,144``): the test metric of what
each search arm and tuned baseline of the searched task would have returned had it stopped after its
first ``b`` trials, for every budget ``b``, from the same searches and tunings.

Rules (also in ``docs/study.md``, "Budget curves"):

* A search seed's point at ``b`` is its best trial on validation among its first ``b`` trials (in
  sampling order), retrained on the evaluation seeds: the mean of its test metric over them. The arm's
  point is the mean over its search seeds, with the standard error and t-interval **over search seeds**
  (how much the result of one search of ``b`` trials varies, the question a budget curve answers).
* A tuned baseline has one tuning: its point at ``b`` is the best of its first ``b`` tuning trials, and
  its interval is over evaluation seeds. A baseline with nothing to tune (``concrete_dropout``, which
  learns its rates in its one run) is one point at one trial; ``none`` is a point at zero trials.
* Searcher against random search at each ``b``: the paired difference over search seeds (search seed
  ``k`` of every arm shares its controller and training seed).
* Cost at ``b``: ``b`` trials and the CPU-seconds of those first ``b`` trials (mean over search seeds). A
  warm-started arm's curve does not count the tunings its start point came from (the cost table does).

Everything comes from the unit results (``best_at`` of the searches and tunings, the final evaluation's
methods ``LABEL@b``): no Ray, no torch.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from autodropout.core.stats import Summary, paired, summarize
from autodropout.study.plan import MAIN, StudyDir, arm_label, searcher_of
from autodropout.study.results import NONE, MethodScores, method_scores
from autodropout.study.unit_results import TrialsResult


@dataclass(frozen=True)
class CurvePoint:
    """One arm at one budget."""

    budget: int
    #: CPU-seconds of the first ``budget`` trials (mean over search seeds for a search arm).
    cpu_s: float
    #: The test metric: over search seeds (search arm) or evaluation seeds (baseline).
    test: Summary
    #: A search arm's value per search seed index ``k`` (its mean over the evaluation seeds); a
    #: baseline's per evaluation seed.
    values: dict[int, float]


@dataclass(frozen=True)
class Curve:
    arm: str
    kind: Literal["search", "baseline"]
    points: list[CurvePoint]


@dataclass(frozen=True)
class CurveComparison:
    """Searcher minus random search started the same way, at one budget, paired over search seeds."""

    arm: str
    reference: str
    budget: int
    diff: Summary


def budget_curves(study: StudyDir) -> list[Curve]:
    """Every search arm's and tuned baseline's curve on the searched task (table order), or ``[]`` for
    a study without ``--budgets`` or before its final evaluation."""
    plan = study.plan
    evaluation = study.read_result(plan.unit("eval", MAIN))
    if not plan.budgets or evaluation is None:
        return []
    methods = method_scores(evaluation)
    cpus = plan.main.experiment.search.cpus_per_trial
    curves = []
    for arm in plan.arms:
        results = [study.read_result(plan.unit("search", MAIN, arm_label(arm, k)))
                   for k in range(len(plan.search_seeds))]
        points = []
        for b in plan.curve_budgets:
            values, seconds = {}, []
            for k, result in enumerate(results):
                scores = _scores_at(methods, result, arm, k, b)
                if scores is not None:
                    values[k] = statistics.fmean(scores.test.values())
                    seconds.append(_seconds(result, b) * cpus)
            if values:
                points.append(CurvePoint(b, statistics.fmean(seconds), summarize(list(values.values())), values))
        curves.append(Curve(arm, "search", points))
    for baseline in plan.main.baselines:
        if baseline == NONE:
            scores = next((m for m in methods if m.label == NONE and m.test), None)
            points = [] if scores is None else [CurvePoint(0, 0.0, summarize(list(scores.test.values())), scores.test)]
        else:
            result = study.read_result(plan.unit("tune", MAIN, baseline))
            points = []
            for b in plan.curve_budgets:
                if result is None or (b > len(result.trials) and points):
                    break  # a tuning shorter than the curve (one trial: nothing to tune) ends its curve
                scores = _scores_at(methods, result, baseline, None, b)
                if scores is not None:
                    points.append(CurvePoint(min(b, len(result.trials)), _seconds(result, b) * cpus,
                                             summarize(list(scores.test.values())), scores.test))
        curves.append(Curve(baseline, "baseline", points))
    return curves


def curve_comparisons(study: StudyDir, curves: list[Curve]) -> list[CurveComparison]:
    """Each other searcher's arm against the random-search arm started the same way, at every budget."""
    by_arm = {c.arm: c for c in curves}
    out = []
    for curve in curves:
        searcher = searcher_of(curve.arm)
        reference = by_arm.get(curve.arm.replace(searcher, "random", 1))
        if curve.kind != "search" or searcher == "random" or reference is None:
            continue
        theirs = {p.budget: p for p in reference.points}
        out += [CurveComparison(curve.arm, reference.arm, p.budget, paired(p.values, theirs[p.budget].values))
                for p in curve.points if p.budget in theirs]
    return out


def _scores_at(methods: list[MethodScores], result: TrialsResult | None, arm: str, k: int | None,
               budget: int) -> MethodScores | None:
    """The evaluated method of ``arm`` (search seed ``k``) that is its unit's best within ``budget``
    trials, or ``None`` (unit unfinished, no successful trial yet, or not evaluated)."""
    if result is None:
        return None
    best = result.best if budget >= len(result.trials) else result.best_at.get(budget)
    if best is None:
        return None
    return next((m for m in methods if m.arm == arm and m.search_seed == k and m.test
                 and m.info.source == best.trial_id), None)


def _seconds(result: TrialsResult, budget: int) -> float:
    """Trial-seconds of the unit's first ``budget`` trials."""
    return sum(t.seconds for t in sorted(result.trials, key=lambda t: t.index)[:budget])
