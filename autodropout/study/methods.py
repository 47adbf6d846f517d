"""The methods a target's final evaluation retrains: each search seed's best pattern (on the searched
task), each search arm's selected pattern mapped onto a transfer target, each imported pattern
(``--transfer-from``, searched task only) mapped onto the searched task, each tuned baseline's best
configuration, and ``none``; on the searched task of a study with ``--budgets``, also each search
seed's and tuned baseline's best of its first ``b`` trials for every smaller budget ``b`` (labelled
``LABEL@b``, with ``info.budget = b``), unless that trial is already evaluated at a larger budget.
They come from finished unit results and the study folder only, so a resumed study rebuilds exactly
the same list.
"""
from __future__ import annotations

from autodropout.runs import Trial
from autodropout.search_spaces import Pattern, SearchSpace
from autodropout.study.plan import MAIN, StudyDir, Target, arm_label
from autodropout.study.results import NONE, select_pattern
from autodropout.study.unit_results import Best, EvalMethod, SearchResult, TuneResult
from autodropout.tasks import Regularization, Task
from autodropout.tasks.mapped_pattern import pattern_onto_task

Method = tuple[Trial, EvalMethod]
#: A search seed's pattern method before it is built: ``(label, arm, k, that search's result)``.
Searched = tuple[str, str, int | None, SearchResult | None]


def eval_methods(study: StudyDir, target: Target, task: Task) -> tuple[list[Method], list[str]]:
    """``(trial, info)`` per method in table order, and a note per method that could not be
    evaluated (a search or tuning in which every trial failed)."""
    methods: list[Method] = []
    missing: list[str] = []
    pattern_methods = _searched(study) if target.key == MAIN else _transferred(study, target)
    for label, arm, k, result in pattern_methods:
        best = None if result is None else result.best
        if best is None:
            missing.append(f"{label}: no successful trial to evaluate")
            continue
        source = best.trial
        pattern, space = source.regularization.pattern, source.space
        if target.key != MAIN:
            pattern, space = pattern_onto_task(task, pattern, source.space)
        methods.append(_pattern_method(target, label, arm, k, pattern, space, best.trial_id, best.reward))
    if target.key == MAIN:
        for imported in study.plan.imports:
            patterns = study.read_import(imported)
            pattern, space = pattern_onto_task(task, patterns.best, patterns.space)
            methods.append(_pattern_method(target, imported.label, imported.label, None, pattern, space,
                                           imported.source, None))
    tunings: list[tuple[str, TuneResult]] = []
    for baseline in target.baselines:
        if baseline == NONE:
            methods.append(_baseline_method(target, baseline, baseline, None))
            continue
        result = study.read_result(study.plan.unit("tune", target.key, baseline))
        if result is None or result.best is None:
            missing.append(f"{baseline}: no successful tuning trial to evaluate")
            continue
        methods.append(_baseline_method(target, baseline, baseline, result.best))
        tunings.append((baseline, result))
    if target.key == MAIN:
        methods += _at_budgets(study, target, pattern_methods, tunings, methods)
    return methods, missing


def _at_budgets(study: StudyDir, target: Target, searched: list[Searched], tunings: list[tuple[str, TuneResult]],
                methods: list[Method]) -> list[Method]:
    """The budget curve's extra methods: per smaller budget (largest first), each search seed's and
    tuned baseline's best of its first ``b`` trials, if not already evaluated for that arm and seed."""
    evaluated = {(info.arm, info.search_seed, info.source) for _, info in methods}
    out: list[Method] = []
    for b in reversed(study.plan.budgets):
        for label, arm, k, result in searched:
            best = None if result is None else result.best_at.get(b)
            if best is None or (arm, k, best.trial_id) in evaluated:
                continue
            evaluated.add((arm, k, best.trial_id))
            source = best.trial
            out.append(_pattern_method(target, f"{label}@{b}", arm, k, source.regularization.pattern, source.space,
                                       best.trial_id, best.reward, budget=b))
        for baseline, result in tunings:
            best = result.best_at.get(b)
            if best is None or (baseline, None, best.trial_id) in evaluated:
                continue
            evaluated.add((baseline, None, best.trial_id))
            out.append(_baseline_method(target, f"{baseline}@{b}", baseline, best, budget=b))
    return out


def _baseline_method(target: Target, label: str, arm: str, best: Best | None, budget: int | None = None) -> Method:
    """A baseline's method: no regularization (``none``, ``best`` is ``None``) or the one of tuning trial ``best``."""
    regularization = Regularization.none() if best is None else best.trial.regularization
    trial = Trial(target.experiment.task, regularization, 0, None, label)
    return trial, EvalMethod(label, arm, None, None if best is None else best.trial_id,
                             None if best is None else best.reward, regularization.describe(),
                             dict(regularization.params), None, budget)


def _pattern_method(target: Target, label: str, arm: str, k: int | None, pattern: Pattern, space: SearchSpace,
                    source: str, search_reward: float | None, budget: int | None = None) -> Method:
    trial = Trial(target.experiment.task, Regularization(pattern=pattern), 0, space, label)
    return trial, EvalMethod(label, arm, k, source, search_reward, trial.regularization.describe(), None,
                             pattern.to_json(), budget)


def _searched(study: StudyDir) -> list[Searched]:
    """``(label, arm, k, search result)`` per search seed of every arm."""
    plan = study.plan
    out = []
    for arm in plan.arms:
        for k in range(len(plan.search_seeds)):
            label = arm_label(arm, k)
            out.append((label, arm, k, study.read_result(plan.unit("search", MAIN, label))))
    return out


def _transferred(study: StudyDir, target: Target) -> list[Searched]:
    """Each search arm's selected pattern (best mean validation on the searched task): the
    ``(label, arm, k, search result)`` of the search it came from."""
    plan = study.plan
    evaluation = study.read_result(plan.unit("eval", MAIN))
    out = []
    for arm in plan.arms:
        chosen = select_pattern(evaluation, arm) if evaluation else None
        result = None if chosen is None else study.read_result(plan.unit("search", MAIN, chosen.label))
        out.append((arm, arm, None if chosen is None else chosen.search_seed, result))
    return out
