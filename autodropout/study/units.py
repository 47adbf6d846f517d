"""Running one unit of a study and turning what it left on disk into its result.

The Ray side is reached only through ``autodropout.tune`` (:func:`~autodropout.tune.search.run_search`
/ :func:`~autodropout.tune.search.resume_search` for a search arm,
:mod:`autodropout.tune.tuned` for a tuned baseline, :func:`~autodropout.tune.parallel.run_grid`
for the final evaluation). Each runner first looks at the unit's folder: a restorable Tune experiment
is continued (finished trials stay, interrupted ones resume from their checkpoints); anything else
left by a driver killed before Tune saved its first state is removed and the unit starts over.
"""
from __future__ import annotations

import logging
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autodropout.core.checks import finite
from autodropout.runs import RunDir, RunDirError, TrialRecord, read_trials
from autodropout.runs.experiment import ExperimentConfig
from autodropout.study.methods import eval_methods
from autodropout.study.plan import StudyDir, Unit, arm_of, is_warm, searcher_of
from autodropout.study.progress import ended_trials
from autodropout.study.unit_results import (
    Best,
    Cell,
    Cost,
    EvalResult,
    SearchResult,
    TrialRow,
    TuneResult,
    UnitResult,
)
from autodropout.study.warm_start import warm_start
from autodropout.tasks import build_task, task_sites
from autodropout.tasks.reward import METRICS

#: On restore, Ray warns once per trial that had not started ("Failed to fetch metrics"): expected
#: after an interruption, and the trials are run as usual.
_RESTORE_LOGGER = "ray.tune.analysis.experiment_analysis"


class UnitInterrupted(RuntimeError):
    """Ray Tune stopped before the unit's trials had all ended (Ctrl-C: Tune saves its state and returns)."""


def check_ended(study: StudyDir, unit: Unit, expected: int) -> None:
    """Raise :class:`UnitInterrupted` unless ``expected`` trials of ``unit`` have ended (finished or failed)."""
    experiment = study.plan.target(unit.target).experiment
    ended = len(ended_trials(experiment_dir(study, unit), experiment.task.train.epochs))
    if ended < expected:
        raise UnitInterrupted(f"{unit.id} stopped with {ended} of {expected} trials ended")


def run_unit(study: StudyDir, unit: Unit) -> UnitResult:
    """Run (or continue) ``unit`` and return its result (the caller writes it); a unit that Ray Tune
    stopped early (Ctrl-C) raises :class:`UnitInterrupted` and leaves no result."""
    logging.getLogger(_RESTORE_LOGGER).setLevel(logging.ERROR)
    return {"search": _search, "tune": _tune, "eval": _evaluate}[unit.kind](study, unit)


def experiment_dir(study: StudyDir, unit: Unit) -> Path:
    """The Tune experiment folder of ``unit`` (where its trial folders appear)."""
    from autodropout.runs.run_dir import EXPERIMENT_NAME
    from autodropout.tune.parallel import GRID_NAME

    return study.unit_dir(unit) / (GRID_NAME if unit.kind == "eval" else EXPERIMENT_NAME)


def _search(study: StudyDir, unit: Unit) -> SearchResult:
    from autodropout.tune.search import resume_search, run_search
    from autodropout.tune.tuned import restorable

    plan = study.plan
    arm, k = arm_of(unit.name), int(unit.name.rsplit("-s", 1)[1])
    seed = plan.search_seeds[k]
    folder = study.unit_dir(unit)
    start = warm_start(study) if is_warm(arm) else None
    experiment = plan.main.experiment.with_search(trials=plan.budget, controller=searcher_of(arm),
                                                  concurrency=plan.concurrency,
                                                  start_from=None if start is None else start.spec)
    if _run_dir(folder) is not None and restorable(experiment_dir(study, unit)):
        resume_search(folder, quiet=True)
    else:
        _clear(folder)
        run_search(experiment, output=folder, seed=seed, quiet=True)
    check_ended(study, unit, plan.budget)
    records = read_trials(experiment_dir(study, unit), RunDir.open(folder).metric)
    sites = task_sites(experiment.task)
    return SearchResult(**_trials_fields(unit, records, experiment, seed, plan.budgets), arm=arm, search_seed=seed,
                        start=start, site_shapes=tuple(tuple(s) for s in sites.shapes) if sites else None)


def _tune(study: StudyDir, unit: Unit) -> TuneResult:
    from autodropout.study.baselines import tuning_domain
    from autodropout.tune.lattice import TUNER
    from autodropout.tune.tuned import restorable, resume_tuned, tune_regularizer

    target = study.plan.target(unit.target)
    experiment, seed = target.experiment, target.experiment.task.train.seed
    domain = tuning_domain(unit.name, experiment.task.kind)
    if restorable(experiment_dir(study, unit)):
        resume_tuned(experiment, experiment_dir(study, unit))
    else:
        _clear(study.unit_dir(unit))
        tune_regularizer(experiment, unit.name, domain, study.unit_dir(unit), trials=unit.trials, seed=seed,
                         concurrency=study.plan.concurrency)
    check_ended(study, unit, unit.trials)
    records = read_trials(experiment_dir(study, unit), build_task_metric(experiment))
    return TuneResult(**_trials_fields(unit, records, experiment, seed, study.plan.budgets), baseline=unit.name,
                      domain=domain, tuner=TUNER)


def _evaluate(study: StudyDir, unit: Unit) -> EvalResult:
    from autodropout.tune.parallel import run_grid

    target = study.plan.target(unit.target)
    task = build_task(target.experiment.task)
    methods, missing = eval_methods(study, target, task)
    by_label = {trial.label: trial for trial, _ in methods}
    search = target.experiment.search
    cells: list[Cell] = []
    grid = run_grid(task, list(by_label.values()), study.plan.eval_seeds, search.cpus_per_trial,
                    search.gpus_per_trial, progress=False, storage=study.unit_dir(unit)) if by_label else iter(())
    for cell in grid:
        if not cells:  # the grid has run: every (method, seed) must have ended
            check_ended(study, unit, len(by_label) * len(study.plan.eval_seeds))
        if cell.state is None:
            cells.append(Cell(cell.method, cell.seed, cell.seconds, None, None, cell.error))
            continue
        model = task.build_model(by_label[cell.method].regularization).to(task.device)
        model.load_state_dict(cell.state)
        val, test = task.evaluate(model, "val"), task.evaluate(model, "test")
        scores = finite(val[task.metric]), finite(test[task.metric])
        error = "non-finite metric" if None in scores else cell.error
        cells.append(Cell(cell.method, cell.seed, cell.seconds, *scores, error,
                          {k: finite(v) for k, v in val.items()}, {k: finite(v) for k, v in test.items()}))
    seconds = sum(c.seconds for c in cells)
    return EvalResult(**_head(unit, task.metric), methods=tuple(info for _, info in methods), missing=tuple(missing),
                      cells=tuple(cells), cost=_cost(len(cells), seconds, target.experiment,
                                                     len(cells) * target.experiment.task.train.epochs))


def build_task_metric(experiment: ExperimentConfig) -> str:
    """The validation metric of ``experiment``'s task (from its class, without loading data)."""
    from autodropout.tasks import task_class

    return task_class(experiment.task.kind).metric


def _trials_fields(unit: Unit, records: list[TrialRecord], experiment: ExperimentConfig, seed: int,
                   budgets: tuple[int, ...]) -> dict[str, Any]:
    """The fields of a search's or tuning's result (:class:`~autodropout.study.unit_results.TrialsResult`):
    the unit's trials, its best on validation and, under ``best_at``, its best among its first ``b``
    trials (in sampling order) for each budget ``b`` of the curve below its own trial count."""
    metric = build_task_metric(experiment)

    def best_of(first: int) -> Best | None:  # records are in sampling order (read_trials)
        done = [r for r in records[:first] if r.status == "done" and r.reward is not None and math.isfinite(r.reward)]
        best = max(done, key=lambda r: r.reward, default=None)
        return None if best is None else Best(best.trial_id, best.reward, finite(best.metric), best.trial.to_config())

    trials = tuple(TrialRow(r.index, r.trial_id, r.status, finite(r.reward), finite(r.metric), r.duration_s,
                            None if r.trial.space else dict(r.trial.regularization.params),
                            None if r.trial.tokens is None else tuple(r.trial.tokens)) for r in records)
    return dict(**_head(unit, metric), seed=seed, trials=trials, best=best_of(len(records)),
                best_at={b: best_of(b) for b in budgets if b < len(records)},
                cost=_cost(len(records), sum(r.duration_s for r in records), experiment,
                           sum(r.epochs for r in records)))


def _head(unit: Unit, metric: str) -> dict[str, Any]:
    return dict(unit=unit.id, target=unit.target, name=unit.name, metric=metric, mode=METRICS[metric],
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _cost(trials: int, seconds: float, experiment: ExperimentConfig, epochs: int) -> Cost:
    """The unit's :class:`Cost` at the experiment's resources per trial (the driver adds the wall time)."""
    s = experiment.search
    return Cost(trials, seconds, seconds * s.cpus_per_trial, seconds * s.gpus_per_trial, epochs)


def _run_dir(folder: Path) -> RunDir | None:
    try:
        return RunDir.open(folder)
    except RunDirError:
        return None


def _clear(folder: Path) -> None:
    """Remove what a driver killed before Tune's first saved state left in a unit's own folder."""
    if folder.exists():
        shutil.rmtree(folder)
