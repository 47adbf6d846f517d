"""The study's report: ``report.md`` (tables), ``report.json`` (the same numbers), the figures and the
best patterns as pattern files, each written atomically, from ``study.json``, ``experiments/``,
``imported/`` and ``results/`` alone. Rebuilding from a copy of the folder gives the same files (nothing depends on
the time or on paths outside the folder).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autodropout.controller import searchers
from autodropout.core.atomic import atomic_write
from autodropout.core.stats import fmt, interval, mean_se, summarize, verdict
from autodropout.study.baselines import describe_domain, tuning_domain
from autodropout.study.curves import Curve, budget_curves, curve_comparisons
from autodropout.study.plan import MAIN, StudyDir, Target, is_warm, searcher_of
from autodropout.study.provenance import write_pattern_files
from autodropout.study.results import (
    NONE,
    ArmSummary,
    CostRow,
    TargetSummary,
    cost_rows,
    search_curves,
    summarize_study,
)
from autodropout.study.unit_results import EvalMethod
from autodropout.tune.lattice import TUNER

REPORT_FILES = ("report.md", "report.json", "search_curves.png", "test_metrics.png", "budget_curves.png",
                "best_pattern.png")


def write_report(study: StudyDir) -> list[Path]:
    """Write every report file that the finished units allow; returns the files written."""
    from autodropout.study.figures import write_figures  # matplotlib only when drawing

    summaries = summarize_study(study)
    costs = cost_rows(study)
    curves = budget_curves(study)
    written = write_pattern_files(study, summaries)
    written += write_figures(study, summaries, curves)
    names = {p.name for p in written}
    written.append(atomic_write(study.path / "report.json", json.dumps(report_json(study, summaries, costs, curves),
                                                                        indent=1, allow_nan=False) + "\n"))
    written.append(atomic_write(study.path / "report.md", markdown(study, summaries, costs, names, curves)))
    return written


def describe_method(info: EvalMethod) -> str:
    """``dropblock(p=0.123, block_size=5)``, ``learned conv pattern (3 sites)``, ``none``."""
    if info.params:
        return f"{info.arm}({_params(info.params)})"
    return info.regularization


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _describe_arm(arm: ArmSummary) -> str:
    if not arm.members:
        return "not evaluated"
    if arm.kind == "imported":
        return f"{describe_method(arm.members[0].info)}, imported from {arm.members[0].info.source}"
    if len(arm.members) == 1:
        return describe_method(arm.members[0].info)
    return f"{len(arm.members)} patterns (one per search seed), averaged per training seed"


def markdown(study: StudyDir, summaries: list[TargetSummary], costs: list[CostRow], figures: set[str],
             curves: list[Curve] = ()) -> str:
    plan = study.plan
    main = plan.main.experiment
    units = plan.units()
    finished = sum(study.read_result(u) is not None for u in units)
    lines = [f"# Study: {main.name}", "", *_plan_lines(study),
             f"- units finished: {finished} of {len(units)}" + ("" if finished == len(units) else " (partial report)"),
             ""]
    for target in summaries:
        lines += _target_section(study, target)
        if target.key == MAIN and curves:
            lines += _curve_section(study, target, list(curves))
    lines += _search_section(study)
    lines += _cost_section(costs)
    pictures = [("search_curves.png", "validation reward per trial"), ("test_metrics.png", "test metric per arm"),
                ("budget_curves.png", "test metric against trials"),
                ("best_pattern.png", "the best learned pattern")]
    shown = [f"![{alt}]({name})" for name, alt in pictures if name in figures]
    if shown:
        lines += ["## Figures", "", *shown, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _plan_lines(study: StudyDir) -> list[str]:
    plan = study.plan
    kind = plan.main.experiment.task.kind
    baselines = ", ".join(b if b == NONE else f"{b} (one trial: nothing to tune)" if not tuning_domain(b, kind)
                          else f"{b} ({_domain(study, plan.main, b)})" for b in plan.main.baselines)
    lines = [
        f"- budget: {plan.budget} trials per search and per tuned baseline on the searched task, "
        f"{plan.concurrency} at a time" + (f"; budget curve at {', '.join(map(str, plan.curve_budgets))} trials"
                                           if plan.budgets else ""),
        f"- search arms: {', '.join(f'{arm} ({arm_text(arm)})' for arm in plan.arms)}; "
        f"{len(plan.search_seeds)} search seed(s) each: {', '.join(map(str, plan.search_seeds))}",
        *_warm_lines(study),
        f"- tuned baselines (tuned by {_tuners(study)}; best on validation): {baselines}",
        f"- final evaluation: each arm's best retrained with training seeds {', '.join(map(str, plan.eval_seeds))} "
        "and scored on the held-out test split; mean ± standard error and 95% t-intervals over seeds; "
        "differences paired by training seed",
    ]
    for imported in plan.imports:
        lines.append(f"- imported pattern `{imported.label}` (--transfer-from {imported.source}): its rank 1, "
                     "mapped onto the searched task's sites, retrained and scored like the arms")
    for target in plan.targets[1:]:
        n = plan.tuning_budget(target.key)
        lines.append(f"- transfer target `{target.experiment.name}` (baselines: {', '.join(target.baselines)}; "
                     f"{n} trial{'' if n == 1 else 's'} per tuned baseline)")
    return lines


#: What the default search arms are, for the report (the words of the published reports); every other
#: searcher's arm is described by its registry entry (:func:`arm_text`).
ARM_TEXT = {"lstm": "LSTM controller, REINFORCE, from scratch", "random": "random search in the same space",
            "lstm-warm": "the LSTM controller started from the best tuned mask baseline",
            "random-warm": "random search around the best tuned mask baseline"}


def arm_text(arm: str) -> str:
    """What search arm ``arm`` is: :data:`ARM_TEXT`, else its searcher's registered summary and paper."""
    if arm in ARM_TEXT:
        return ARM_TEXT[arm]
    entry = searchers.info(searcher_of(arm))
    what = f"{entry.summary} ({entry.reference})" if entry.reference else entry.summary
    return f"{what} started from the best tuned mask baseline" if is_warm(arm) else f"{what}, from scratch"


def _warm_lines(study: StudyDir) -> list[str]:
    """Where the warm-started arms started, as their first finished search recorded it."""
    for unit in study.plan.search_units():
        result = study.read_result(unit)
        start = None if result is None else result.start
        if start is not None:
            return [f"- warm start: `--start-from {start.spec}` (the best of the tuned mask baselines "
                    f"{', '.join(t.rsplit('/', 1)[1] for t in start.tunings)} by tuning reward, "
                    f"{fmt(start.reward)}); those tunings count in the warm arms' cost"]
    return []


def _domain(study: StudyDir, target: Target, baseline: str) -> str:
    """The domain ``baseline`` was tuned over on ``target``, as its result recorded it (a study keeps the
    domain it ran with); before it has finished, the one it will run with."""
    result = study.read_result(study.plan.unit("tune", target.key, baseline))
    return describe_domain((result and result.domain) or tuning_domain(baseline, target.experiment.task.kind))


def _tuners(study: StudyDir) -> str:
    """How the finished tunings chose their trials (before any has finished, how they will)."""
    results = [study.read_result(unit) for unit in study.plan.units() if unit.kind == "tune"]
    return "; ".join(sorted({r.tuner for r in results if r is not None})) or TUNER


def _target_section(study: StudyDir, t: TargetSummary) -> list[str]:
    better = "higher" if t.mode == "max" else "lower"
    title = f"Searched task `{t.experiment}`" if t.key == MAIN else f"Transfer to `{t.experiment}`"
    lines = [f"## {title}: test {t.metric} ({better} is better)", "",
             f"| arm | regularization | val {t.metric} | test {t.metric} (mean ± SE) | 95% CI | seeds |",
             "|---|---|---|---|---|---|"]
    for arm in t.arms:
        what = _describe_arm(arm)
        lines.append(f"| {arm.name} | {what} | {fmt(arm.val.mean)} | {mean_se(arm.test)} | {interval(arm.test)} "
                     f"| {arm.test.n} |")
    lines += ["", f"Best tuned baseline (by mean validation {t.metric}): **{t.best_baseline or '-'}**.", "",
              f"Paired test differences (arm - reference, same training seeds; {better} is better):", "",
              "| arm | reference | difference (mean ± SE) | 95% CI | verdict |", "|---|---|---|---|---|"]
    for c in t.comparisons:
        reference = c.reference + (" (best tuned)" if c.reference == t.best_baseline else "")
        lines.append(f"| {c.arm} | {reference} | {mean_se(c.diff, True)} | {interval(c.diff, True)} "
                     f"| {verdict(c.diff, t.mode)} |")
    if t.key == MAIN:
        lines += ["", "Each search seed's best pattern on its own:", "",
                  f"| pattern | search reward | val {t.metric} | test {t.metric} (mean ± SE) | 95% CI |",
                  "|---|---|---|---|---|"]
        for arm in (a for a in t.arms if a.search):
            for m in arm.members:
                test = summarize(list(m.test.values()))
                val = summarize(list(m.val.values()))
                lines.append(f"| {m.label} | {fmt(m.info.search_reward)} | {fmt(val.mean)} "
                             f"| {mean_se(test)} | {interval(test)} |")
    if t.missing:
        lines += ["", "Not evaluated: " + "; ".join(t.missing) + "."]
    return lines + [""]


def _curve_section(study: StudyDir, t: TargetSummary, curves: list[Curve]) -> list[str]:
    budgets = study.plan.curve_budgets
    better = "higher" if t.mode == "max" else "lower"
    lines = [f"### Budget curve: test {t.metric} of the best found within the first b trials ({better} is better)", "",
             "A search arm: mean ± SE over its search seeds (each seed's best so far on validation, retrained on "
             "the evaluation seeds); a tuned baseline: its one tuning's best so far, ± SE over the evaluation seeds. "
             "CPU-h: the first b trials (docs/study.md, \"Budget curves\").", "",
             "| arm | " + " | ".join(f"b = {b}" for b in budgets) + " | CPU-h at b = " + str(budgets[-1]) + " |",
             "|---|" + "---|" * (len(budgets) + 1)]
    for curve in curves:
        at = {p.budget: p for p in curve.points}
        if len(curve.points) == 1 and curve.points[0].budget < budgets[0]:  # none (0 trials), one-trial baselines
            p = curve.points[0]
            cells = [f"{mean_se(p.test)} at {p.budget} trial{'s' * (p.budget != 1)}"] + [""] * (len(budgets) - 1)
            cpu = p.cpu_s
        else:
            cells = [mean_se(at[b].test) if b in at else "-" for b in budgets]
            cpu = at[budgets[-1]].cpu_s if budgets[-1] in at else None
        lines.append(f"| {curve.arm} | " + " | ".join(cells) + f" | {'-' if cpu is None else f'{cpu / 3600:.2f}'} |")
    comparisons = curve_comparisons(study, curves)
    if comparisons:
        lines += ["", f"Searcher - random search started the same way, paired over search seeds ({better} is better):",
                  "", "| arm | reference | b | difference (mean ± SE) | 95% CI | verdict |",
                  "|---|---|---|---|---|---|"]
        for c in comparisons:
            lines.append(f"| {c.arm} | {c.reference} | {c.budget} | {mean_se(c.diff, True)} | {interval(c.diff, True)} "
                         f"| {verdict(c.diff, t.mode)} |")
    return lines + [""]


def _search_section(study: StudyDir) -> list[str]:
    lines = ["## Search and tuning (validation reward)", "",
             "| arm | seed | trials (failed) | best reward | mean reward, first third | last third |",
             "|---|---|---|---|---|---|"]
    for arm, runs in search_curves(study).items():
        for k, rewards in enumerate(runs):
            ok = [r for r in rewards if r is not None]
            third = max(1, len(ok) // 3)
            first = sum(ok[:third]) / len(ok[:third]) if ok else None
            last = sum(ok[-third:]) / len(ok[-third:]) if ok else None
            lines.append(f"| {arm} | {k} | {len(rewards)} ({len(rewards) - len(ok)}) | {fmt(max(ok, default=None))} "
                         f"| {fmt(first)} | {fmt(last)} |")
    lines += ["", "| target | tuned baseline | domain | best configuration | best reward | trials (failed) |",
              "|---|---|---|---|---|---|"]
    for target in study.plan.targets:
        for baseline in (b for b in target.baselines if b != NONE):
            result = study.read_result(study.plan.unit("tune", target.key, baseline))
            if result is None:
                continue
            failed = sum(t.status != "done" for t in result.trials)
            best = result.best
            config = "-" if best is None else _params(best.trial.regularization.params)
            lines.append(f"| {target.key} | {baseline} | {_domain(study, target, baseline)} | {config} "
                         f"| {fmt(best.reward if best else None)} | {len(result.trials)} ({failed}) |")
    return lines + [""]


def _cost_section(costs: list[CostRow]) -> list[str]:
    lines = ["## Cost", "",
             "Search or tuning: trial-seconds x CPUs (GPUs) per trial; epochs: trained by its trials (fewer than "
             "trials x schedule where a trial scheduler stopped some); wall: time spent in the unit(s), "
             "interruptions excluded; final evaluation: the arm's retraining runs.", "",
             "| target | arm | trials | epochs | CPU-s | GPU-s | wall | trials per hour | final-evaluation CPU-s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in costs:
        lines.append(f"| {c.target} | {c.arm} | {c.trials} | {c.epochs} | {c.cpu_s:.0f} | {c.gpu_s:.0f} "
                     f"| {c.wall_s:.0f}s "
                     f"| {fmt(c.trials_per_hour, 3)} | {'-' if c.eval_cpu_s is None else f'{c.eval_cpu_s:.0f}'} |")
    return lines + [""]


def report_json(study: StudyDir, summaries: list[TargetSummary], costs: list[CostRow],
                curves: list[Curve] = ()) -> dict[str, Any]:
    def arm(a: Any) -> dict[str, Any]:
        return {"name": a.name, "kind": a.kind, "search": a.search, "val": a.val.to_json(), "test": a.test.to_json(),
                "test_by_seed": {str(k): v for k, v in a.test_by_seed.items()},
                "methods": [{"label": m.label, "search_seed": m.search_seed, "regularization": m.info.regularization,
                             "val": {str(k): v for k, v in m.val.items()},
                             "test": {str(k): v for k, v in m.test.items()}, "failed": m.failed} for m in a.members]}

    return {"format": "autodropout.study.report", "version": 1, "plan": study.plan.to_json(),
            "targets": [{"key": t.key, "experiment": t.experiment, "metric": t.metric, "mode": t.mode,
                         "best_baseline": t.best_baseline, "arms": [arm(a) for a in t.arms],
                         "comparisons": [{"arm": c.arm, "reference": c.reference, **c.diff.to_json()}
                                         for c in t.comparisons], "missing": t.missing} for t in summaries],
            "costs": [{**c.__dict__, "trials_per_hour": c.trials_per_hour} for c in costs],
            "budget_curves": [{"arm": c.arm, "kind": c.kind,
                               "points": [{"budget": p.budget, "cpu_s": p.cpu_s, "test": p.test.to_json(),
                                           "values": {str(k): v for k, v in p.values.items()}} for p in c.points]}
                              for c in curves]}
