"""What a study found, computed from its unit results alone (no Ray, no torch, no data).

Rules (also in ``docs/study.md``):

* A search arm with K search seeds has K best patterns, each retrained on the S evaluation seeds. Its
  score on evaluation seed ``e`` is the mean over its K patterns at ``e``: the expected result of
  running that search once, paired with every other method by training seed. Its interval is over
  evaluation seeds for these K searches; the K patterns are also reported one by one.
* The *best tuned baseline* of a target is the tuned baseline (not ``none``) with the best mean
  validation metric in the final evaluation: chosen on validation, scored on test.
* The pattern a search arm transfers (and publishes) is its pattern with the best mean validation
  metric over the evaluation seeds.
* An imported pattern (``--transfer-from``) is one arm of the searched task, compared like a search
  arm with ``none`` and the best tuned baseline.
* Differences are ``arm - reference`` on the test metric, paired by training seed; with
  ``mode == "min"`` (perplexity) a negative difference is an improvement.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

from autodropout.core.stats import Summary, paired, per_seed_mean, summarize
from autodropout.study.plan import MAIN, StudyDir, StudyPlan, Target, Unit, arm_of, is_warm, searcher_of
from autodropout.study.unit_results import EvalMethod, EvalResult, SearchResult, TuneResult

NONE = "none"


@dataclass
class MethodScores:
    """One evaluated method (a search seed's pattern, or a baseline) of a target, per evaluation seed."""

    label: str
    arm: str
    search_seed: int | None
    info: EvalMethod
    val: dict[int, float]
    test: dict[int, float]
    failed: int

    @property
    def budget(self) -> int | None:
        """The smaller budget of the curve this method is the best at (``--budgets``); ``None`` for
        the study's own budget, the method every table uses."""
        return self.info.budget


#: What an arm is: a search arm of this study, a pattern imported with ``--transfer-from``, or a
#: baseline (``none`` or a tuned regularizer).
ArmKind = Literal["search", "imported", "baseline"]


@dataclass
class ArmSummary:
    """An arm on a target: its methods, its per-seed values (mean over its methods) and their summaries."""

    name: str
    kind: ArmKind
    members: list[MethodScores]
    val_by_seed: dict[int, float]
    test_by_seed: dict[int, float]
    val: Summary
    test: Summary

    @property
    def search(self) -> bool:
        return self.kind == "search"


@dataclass
class Comparison:
    arm: str
    reference: str
    diff: Summary


@dataclass
class TargetSummary:
    key: str
    experiment: str
    metric: str
    mode: str
    arms: list[ArmSummary]
    best_baseline: str | None
    comparisons: list[Comparison]
    missing: list[str] = field(default_factory=list)

    def arm(self, name: str) -> ArmSummary | None:
        return next((a for a in self.arms if a.name == name), None)


def method_scores(evaluation: EvalResult) -> list[MethodScores]:
    """Every method of an evaluation result, in table order."""
    scores = []
    for info in evaluation.methods:
        cells = [c for c in evaluation.cells if c.label == info.label]
        ok = [c for c in cells if c.error is None]
        scores.append(MethodScores(info.label, info.arm, info.search_seed, info, {c.seed: c.val for c in ok},
                                   {c.seed: c.test for c in ok}, len(cells) - len(ok)))
    return scores


def _key(values: dict[int, float], mode: str) -> float:
    mean = statistics.fmean(values.values())
    return mean if mode == "max" else -mean


def select_pattern(evaluation: EvalResult, arm: str) -> MethodScores | None:
    """The arm's pattern with the best mean validation metric (first on a tie), or ``None``."""
    candidates = [m for m in method_scores(evaluation)
                  if m.arm == arm and m.search_seed is not None and m.budget is None and m.val]
    return max(candidates, key=lambda m: _key(m.val, evaluation.mode), default=None)


def summarize_target(plan: StudyPlan, target: Target, evaluation: EvalResult) -> TargetSummary:
    """Arms, the best tuned baseline and the paired comparisons of one evaluated target."""
    mode = evaluation.mode
    members = method_scores(evaluation)
    arms = []
    imported = plan.imported_on(target)
    for name in plan.arm_names(target):
        mine = [m for m in members if m.arm == name and m.budget is None and m.test]
        val, test = per_seed_mean([m.val for m in mine]), per_seed_mean([m.test for m in mine])
        kind = "search" if name in plan.arms else "imported" if name in imported else "baseline"
        arms.append(ArmSummary(name, kind, mine, val, test, summarize(list(val.values())),
                               summarize(list(test.values()))))
    tuned = [a for a in arms if a.kind == "baseline" and a.name != NONE and a.val_by_seed]
    best = max(tuned, key=lambda a: _key(a.val_by_seed, mode), default=None)
    comparisons = _comparisons(plan, arms, best)
    return TargetSummary(target.key, target.experiment.name, evaluation.metric, mode, arms,
                         best.name if best else None, comparisons, list(evaluation.missing))


def _comparisons(plan: StudyPlan, arms: list[ArmSummary], best: ArmSummary | None) -> list[Comparison]:
    """Every arm against ``none``; each search arm and imported pattern against the best tuned
    baseline; each other searcher's arm against the random-search arm started the same way (cold or warm)."""
    by_name = {a.name: a for a in arms}
    pairs = [(a.name, NONE) for a in arms if a.name != NONE]
    if best is not None:
        pairs += [(a.name, best.name) for a in arms if a.kind != "baseline"]
    for arm in plan.arms:  # each controller against random search started the same way
        searcher = searcher_of(arm)
        random_arm = arm.replace(searcher, "random", 1)
        if searcher != "random" and random_arm in plan.arms:
            pairs.append((arm, random_arm))
    out = []
    for arm, reference in pairs:
        a, b = by_name.get(arm), by_name.get(reference)
        if a is not None and b is not None and a.test_by_seed and b.test_by_seed:
            out.append(Comparison(arm, reference, paired(a.test_by_seed, b.test_by_seed)))
    return out


def summarize_study(study: StudyDir) -> list[TargetSummary]:
    """A :class:`TargetSummary` per target whose final evaluation has finished."""
    out = []
    for target in study.plan.targets:
        evaluation = study.read_result(study.plan.unit("eval", target.key))
        if evaluation is not None:
            out.append(summarize_target(study.plan, target, evaluation))
    return out


def search_curves(study: StudyDir) -> dict[str, list[list[float | None]]]:
    """Per search arm, per search seed, the validation reward of each trial in sampling order
    (``None`` for a failed trial); only finished searches."""
    curves: dict[str, list[list[float | None]]] = {arm: [] for arm in study.plan.arms}
    for unit in study.plan.search_units():
        result: SearchResult | None = study.read_result(unit)
        if result is not None:
            curves[result.arm].append(_rewards(result))
    return curves


def _rewards(result: SearchResult | TuneResult) -> list[float | None]:
    """The validation reward of each trial in sampling order (``None`` for a failed trial)."""
    return [t.reward if t.status == "done" else None for t in result.trials]


def tuning_curves(study: StudyDir, key: str = MAIN) -> dict[str, list[float | None]]:
    """Per tuned baseline of target ``key``, its trials' validation rewards in sampling order."""
    curves = {}
    for baseline in study.plan.target(key).baselines:
        if baseline == NONE:
            continue
        result = study.read_result(study.plan.unit("tune", key, baseline))
        if result is not None:
            curves[baseline] = _rewards(result)
    return curves


@dataclass
class CostRow:
    """What one arm's search or tuning cost on a target, and its final evaluation."""

    target: str
    arm: str
    trials: int
    cpu_s: float
    gpu_s: float
    wall_s: float
    eval_cpu_s: float | None
    #: epochs trained by the search's or tuning's trials (trials x schedule unless a scheduler stopped some)
    epochs: int = 0

    @property
    def trials_per_hour(self) -> float | None:
        return 3600.0 * self.trials / self.wall_s if self.wall_s > 0 else None


def cost_rows(study: StudyDir) -> list[CostRow]:
    """One row per search arm (its K searches together; a warm-started arm's also counts the mask
    tunings its start point was chosen from), imported pattern (no search: its final evaluation only)
    and tuned baseline, per target."""
    rows = []
    for target in study.plan.targets:
        evaluation = study.read_result(study.plan.unit("eval", target.key))
        imported = study.plan.imported_on(target)
        names = study.plan.arm_names(target) if target.key == MAIN else list(target.baselines)
        for name in names:
            if name in study.plan.arms:
                units = [u for u in study.plan.search_units() if arm_of(u.name) == name]
                if is_warm(name):  # choosing the start point took every mask tuning: counted once
                    units += [u for u in study.plan.units() if u.id in _start_tunings(study, units)]
            else:
                units = [] if name == NONE or name in imported else [study.plan.unit("tune", target.key, name)]
            results = [r for r in map(study.read_result, units) if r is not None]
            if len(results) < len(units):
                continue
            costs = [r.cost for r in results]
            rows.append(CostRow(target.key, name, sum(c.trials for c in costs), sum(c.cpu_s for c in costs),
                                sum(c.gpu_s for c in costs), sum(c.wall_s for c in costs), _eval_cpu(evaluation, name),
                                sum(c.epochs for c in costs)))
    return rows


def _start_tunings(study: StudyDir, searches: list[Unit]) -> set[str]:
    """The ids of the tunings a warm arm's searches chose their start point from."""
    return {unit for r in map(study.read_result, searches) if r is not None for unit in r.start.tunings}


def _eval_cpu(evaluation: EvalResult | None, arm: str) -> float | None:
    if evaluation is None:
        return None
    cost = evaluation.cost
    per_second = cost.cpu_s / cost.trial_s if cost.trial_s else 0.0
    labels = {m.label for m in evaluation.methods if m.arm == arm}
    return per_second * sum(c.seconds for c in evaluation.cells if c.label in labels)
