"""The methods a target's final evaluation retrains: each search seed's best pattern (on the searched
task), each search arm's selected pattern mapped onto a transfer target, each imported pattern
(``--transfer-from``, searched task only) mapped onto the searched task, each tuned baseline's best
configuration, and ``none``. They come from finished unit results and the study folder only, so a
resumed study rebuilds exactly the same list.
"""
from __future__ import annotations

from typing import Any

from autodropout.runs import Trial
from autodropout.search_spaces import Pattern, SearchSpace
from autodropout.study.plan import MAIN, StudyDir, Target, arm_label
from autodropout.study.results import NONE, select_pattern
from autodropout.tasks import Regularization, Task
from autodropout.training import pattern_onto_task

Method = tuple[Trial, dict[str, Any]]


def eval_methods(study: StudyDir, target: Target, task: Task) -> tuple[list[Method], list[str]]:
    """``(trial, info)`` per method in table order, and a note per method that could not be
    evaluated (a search or tuning in which every trial failed)."""
    methods: list[Method] = []
    missing: list[str] = []
    pattern_methods = _searched(study) if target.key == MAIN else _transferred(study, target, task)
    for label, arm, k, best in pattern_methods:
        if best is None:
            missing.append(f"{label}: no successful trial to evaluate")
            continue
        source = Trial.from_config(best["config"])
        pattern, space = source.regularization.pattern, source.space
        if target.key != MAIN:
            pattern, space = pattern_onto_task(task, pattern, source.space)
        methods.append(_pattern_method(target, label, pattern, space, {
            "arm": arm, "search_seed": k, "source": best["trial_id"], "search_reward": best["reward"]}))
    if target.key == MAIN:
        for imported in study.plan.imports:
            patterns = study.read_import(imported)
            pattern, space = pattern_onto_task(task, patterns.best, patterns.space)
            methods.append(_pattern_method(target, imported.label, pattern, space, {
                "arm": imported.label, "search_seed": None, "source": imported.source, "search_reward": None}))
    for baseline in target.baselines:
        if baseline == NONE:
            regularization, info = Regularization.none(), {"search_reward": None, "source": None}
        else:
            best = (study.read_result(study.plan.unit("tune", target.key, baseline)) or {}).get("best")
            if best is None:
                missing.append(f"{baseline}: no successful tuning trial to evaluate")
                continue
            regularization = Trial.from_config(best["config"]).regularization
            info = {"search_reward": best["reward"], "source": best["trial_id"]}
        trial = Trial(target.experiment.task, regularization, 0, None, baseline)
        methods.append((trial, {"label": baseline, "arm": baseline, "search_seed": None, **info,
                                "regularization": regularization.describe(), "params": dict(regularization.params),
                                "pattern": None}))
    return methods, missing


def _pattern_method(target: Target, label: str, pattern: Pattern, space: SearchSpace, info: dict[str, Any]) -> Method:
    trial = Trial(target.experiment.task, Regularization(pattern=pattern), 0, space, label)
    return trial, {"label": label, **info, "regularization": trial.regularization.describe(), "params": None,
                   "pattern": pattern.to_json()}


def _searched(study: StudyDir) -> list[tuple[str, str, int, dict | None]]:
    plan = study.plan
    out = []
    for arm in plan.arms:
        for k in range(len(plan.search_seeds)):
            label = arm_label(arm, k)
            out.append((label, arm, k, (study.read_result(plan.unit("search", MAIN, label)) or {}).get("best")))
    return out


def _transferred(study: StudyDir, target: Target, task: Task) -> list[tuple[str, str, int, dict | None]]:
    """Each search arm's selected pattern (best mean validation on the searched task)."""
    plan = study.plan
    evaluation = study.read_result(plan.unit("eval", MAIN))
    out = []
    for arm in plan.arms:
        chosen = select_pattern(evaluation, arm) if evaluation else None
        best = None
        if chosen is not None:
            best = (study.read_result(plan.unit("search", MAIN, chosen.label)) or {}).get("best")
        out.append((arm, arm, None if chosen is None else chosen.search_seed, best))
    return out
