"""Running a study: check the request, make the folder, run each unit not yet finished, write the report.

Resuming is the same loop on an existing folder: a unit with a result file is skipped, the unit that
was interrupted continues from its Tune experiment (see :mod:`autodropout.study.units`), the rest start.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from autodropout.study.plan import StudyDir, StudyPlan
from autodropout.study.progress import StudyProgress, duration
from autodropout.study.report import write_report
from autodropout.study.request import make_plan
from autodropout.study.unit_results import EvalResult, UnitResult
from autodropout.study.units import UnitInterrupted, build_task_metric, experiment_dir, run_unit


def default_output(name: str) -> Path:
    return Path("studies") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


def run_study(experiment: str | Path, output: str | Path | None = None, address: str | None = None,
              **options: Any) -> StudyDir:
    """Run a new study of ``experiment`` (see ``docs/study.md``) with the
    :class:`~autodropout.study.request.StudyRequest` fields ``options`` (``budget``, ``search_seeds``,
    ``baselines``, ``arms``, ``budgets``, ...); every input is checked before anything is written.

    Args:
        output: the study folder (default ``studies/NAME-TIMESTAMP``); it must be new or empty.
        address: a Ray cluster (``auto`` or ``HOST:PORT``); default: a local instance.
    """
    from autodropout.tune.cluster import connect

    plan = make_plan(experiment, **options)
    folder = StudyDir.check_new(Path(output) if output else default_output(plan.main.experiment.name))
    _check_cluster(plan, connect(address))
    return _run(StudyDir.create(folder, plan))


def resume_study(path: str | Path, address: str | None = None) -> StudyDir:
    """Continue a study whose driver stopped (even by SIGKILL): nothing finished is run again."""
    from autodropout.tune.cluster import connect

    study = StudyDir.open(path)
    _check_cluster(study.plan, connect(address))
    return _run(study)


def rebuild_report(path: str | Path) -> list[Path]:
    """Rewrite the report files of a study folder (or a copy of one) from its results alone."""
    return write_report(StudyDir.open(path))


def _check_cluster(plan: StudyPlan, resources: dict[str, float]) -> None:
    from autodropout.tune.cluster import check_resources

    for target in plan.targets:
        check_resources(resources, target.experiment.search.cpus_per_trial, target.experiment.search.gpus_per_trial)


def _run(study: StudyDir) -> StudyDir:
    plan = study.plan
    units = plan.units()
    progress = StudyProgress(sum(u.trials for u in units), study.walls_file)
    began = time.perf_counter()
    targets = ("" if plan.transfer_budget is None
               else f", {plan.transfer_budget} per tuned baseline of a transfer target")
    curve = f", budget curve at {', '.join(map(str, plan.curve_budgets))} trials" if plan.budgets else ""
    print(f"autodropout study {plan.main.experiment.name}: {len(units)} units, {progress.total} trials "
          f"({plan.budget} per search and tuned baseline{targets}{curve}, {len(plan.search_seeds)} search seeds, "
          f"{len(plan.eval_seeds)} evaluation seeds); study folder {study.path}", flush=True)
    estimate = estimate_seconds(plan)
    if estimate is not None:
        print(f"estimated {duration(estimate)} in all at {plan.concurrency} trials at a time, from the measured "
              "seconds per trial of the presets (autodropout list presets)", flush=True)
    for unit in units:
        if study.read_result(unit) is not None:
            progress.skip(unit.trials)
            continue
        experiment = plan.target(unit.target).experiment
        try:
            with progress.watch(unit, experiment_dir(study, unit), build_task_metric(experiment),
                                experiment.task.train.epochs):
                result = run_unit(study, unit)
        except (UnitInterrupted, KeyboardInterrupt) as exc:
            print(f"{exc or unit.id + ' interrupted'}; continue with: autodropout study --resume {study.path}",
                  file=sys.stderr, flush=True)
            raise KeyboardInterrupt from None
        result = result.with_wall(progress.walls.get(unit.id, 0.0))
        study.write_result(unit, result)
        progress.line(f"{unit.id} finished: {_unit_summary(result)}")
    write_report(study)
    print(f"study finished in {duration(time.perf_counter() - began)}; report: {study.path / 'report.md'}", flush=True)
    return study


def estimate_seconds(plan: StudyPlan) -> float | None:
    """The whole study's wall time from the presets' measured seconds per trial (``None`` unless every
    target is an unmodified embedded preset measured on the trials' device): trials x seconds / concurrency."""
    from autodropout.commands.catalog import TRIAL_SECONDS
    from autodropout.runs.experiment import find_experiment, presets

    total = 0.0
    for unit in plan.units():
        experiment = plan.target(unit.target).experiment
        name = experiment.name
        if name not in TRIAL_SECONDS or name not in presets() or find_experiment(name).task != experiment.task:
            return None
        seconds = TRIAL_SECONDS[name].get("gpu" if experiment.search.gpus_per_trial > 0 else "cpu")
        if seconds is None:  # not measured on this kind of device
            return None
        total += unit.trials * seconds / plan.concurrency
    return total


def _unit_summary(result: UnitResult) -> str:
    if isinstance(result, EvalResult):
        failed = sum(c.error is not None for c in result.cells)
        return f"{len(result.cells)} runs ({failed} failed) evaluated on test"
    failed = sum(t.status != "done" for t in result.trials)
    head = f"{len(result.trials)} trials ({failed} failed)"
    return head + (f", best reward {result.best.reward:.4f}" if result.best else ", none succeeded")
