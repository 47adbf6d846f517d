"""The search driver: a new search, resuming or extending one, stopping cleanly, and the summary.

The run folder's layout is :class:`~autodropout.runs.run_dir.RunDir`'s; the Tuner is built in
:mod:`autodropout.tune.tuner`; SIGINT/SIGTERM handling is :mod:`autodropout.tune.interrupt`'s.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from ray import tune

from autodropout.controller import searchers
from autodropout.controller.searcher import BaseSearcher
from autodropout.runs import ENDED, RunDir, RunDirError, SearchSummary, TrialRecord, export_run, read_trials
from autodropout.runs.experiment import ExperimentConfig
from autodropout.tasks import Task, build_task, task_sites
from autodropout.tune.checkpoints import STATE_FILE
from autodropout.tune.cluster import check_cluster, check_resources, check_shared_storage, connect, storage_folder
from autodropout.tune.interrupt import stop_on_signals
from autodropout.tune.listeners import Broadcast, SearcherCheckpoint
from autodropout.tune.reevaluate import pending, reevaluate
from autodropout.tune.start_point import start_tokens
from autodropout.tune.tensorboard import ControllerLogger
from autodropout.tune.tuner import new_tuner, restored_tuner, save_controller_state, trial_dirname

__all__ = ["SearchSummary", "default_run_dir", "resume_search", "run_search", "trial_dirname"]

logger = logging.getLogger(__name__)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_search(experiment: ExperimentConfig, output: Path | None = None, address: str | None = None,
               seed: int | None = None, quiet: bool = False) -> SearchSummary:
    """Run a new search described by ``experiment`` into the run folder ``output``.

    SIGINT or SIGTERM stop it cleanly: the summary then has ``status == "interrupted"`` and the run
    folder can be resumed with :func:`resume_search`.
    """
    search = experiment.search
    path = RunDir.check_new(Path(output) if output else default_run_dir(experiment.name))
    threads = experiment.task.train.threads
    if not quiet:
        print(f"autodropout search {experiment.name}: {search.trials} trials, {search.concurrency} at a time, "
              f"{search.controller} controller, {threads} thread{'s' * (threads != 1)} per trial; run folder {path}",
              flush=True)
    folder = storage_folder(search, path)  # a URI is refused before Ray starts
    resources = connect(address)
    check_resources(resources, search.cpus_per_trial, search.gpus_per_trial)
    check_shared_storage(search, folder)
    with stop_on_signals() as stop:
        task = build_task(experiment.task)
        space = task.search_space(search.values, search.embedding_values)
        seed = experiment.task.train.seed if seed is None else seed
        start = search.start_point()
        start = None if start is None else start_tokens(start, task, space)
        run = RunDir.create(path, experiment, space, task.metric, seed, start_tokens=start)
        try:
            tuner = new_tuner(run, task, _make_searcher(run), quiet)
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)  # nothing ran: leave nothing half-made behind
            raise
        if not quiet:
            origin = "" if start is None else f" from {search.start_from}"
            print(f"search space: {space.kind}, {space.num_sites} sites ({float(space.size):.2g} patterns); "
                  f"starting the trials{origin}", flush=True)
        stop.armed = True
        return _fit_and_finish(tuner, run, task, quiet)


def resume_search(run_dir: Path, trials: int | None = None, address: str | None = None,
                  quiet: bool = False) -> SearchSummary:
    """Continue a search whose driver stopped (even by SIGKILL) from its run folder; with
    ``trials`` larger than the run's, extend it to that many trials with the restored controller.

    A run that has already ended all its trials (and is not extended) is reported as ``complete``
    without starting Ray.
    """
    run = RunDir.open(run_dir)
    records = read_trials(run.experiment_dir, run.metric)
    extended = run.with_trials(trials) if trials is not None else run  # refuses to shrink
    extend = extended.trials != run.trials
    if not extend and _complete(records, run.trials) and not pending(run, records):
        # Files only (the table and patterns as the trial folders say, in case the last driver could
        # not write them): nothing to run, so no Ray.
        exported = export_run(run, top=run.experiment.search.top_k)
        plot = run.progress_plot if run.progress_plot.exists() else _final_plot(run, exported.records)
        summary = SearchSummary.of(run, exported, "complete", progress_plot=plot,
                                   checkpoints_kept=_checkpoints_kept(run))
        if not quiet:
            print(summary.text(), flush=True)
        return summary
    if not tune.Tuner.can_restore(str(run.experiment_dir)):
        raise RunDirError(f"{run.path}: the Tune experiment {run.experiment_dir} cannot be restored "
                          "(it has no saved state yet: start a new search instead)")
    if extend:
        run = extended
        run.save_config()
    if not quiet:
        ended = sum(r.status in ENDED for r in records)
        what = (f"extending the search to {run.trials} trials" if extend
                else f"resuming the search of {run.trials} trials")
        print(f"autodropout search {run.experiment.name}: {what}, {ended} ended before; run folder {run.path}",
              flush=True)
    # It may be another cluster than the run's first.
    check_cluster(connect(address), run.experiment.search, run.experiment_dir.parent)
    with stop_on_signals() as stop:
        task = build_task(run.experiment.task)
        tuner = restored_tuner(run, task, _make_searcher(run), quiet)
        stop.armed = True
        return _fit_and_finish(tuner, run, task, quiet)


def _make_searcher(run: RunDir) -> BaseSearcher:
    s = run.experiment.search
    sites = task_sites(run.experiment.task)
    listener = Broadcast([ControllerLogger(run.tensorboard_dir, site_shapes=sites.shapes if sites else None),
                          SearcherCheckpoint(run.controller_state)])
    options = {"metric": "reward", "mode": "max", "seed": run.seed, "on_update": listener,
               "start_tokens": run.start_tokens, "start_probability": s.start_probability,
               "epochs": run.experiment.task.train.epochs}
    return searchers.build(s.controller, run.space, s.searcher_settings(), **options)


def _fit_and_finish(tuner: tune.Tuner, run: RunDir, task: Task, quiet: bool) -> SearchSummary:
    """Run the tuning loop (until done or stopped) and, once every trial has ended, the top-k
    re-evaluation; then write the run folder's tables, pictures and controller state, and say how it
    ended."""
    began = time.perf_counter()
    tuner.fit()
    save_controller_state(run)
    records = read_trials(run.experiment_dir, run.metric)
    complete = _complete(records, run.trials)
    if complete and pending(run, records):
        try:
            reevaluate(run, task, records, quiet)
        except KeyboardInterrupt:
            complete = False  # --resume runs it again, from the grid's checkpoints
    wall = time.perf_counter() - began
    exported = export_run(run, top=run.experiment.search.top_k)
    status = "finished" if complete else "interrupted"
    summary = SearchSummary.of(run, exported, status, wall_seconds=wall,
                               progress_plot=_final_plot(run, exported.records),
                               checkpoints_kept=_checkpoints_kept(run))
    if not quiet:
        print(summary.text(), flush=True)
        if summary.interrupted:
            print(summary.resume_hint(), file=sys.stderr, flush=True)
    return summary


def _complete(records: list[TrialRecord], trials: int) -> bool:
    """Whether the run has all its trials and each has ended (completed or failed)."""
    return len(records) >= trials and all(r.status in ENDED for r in records)


def _final_plot(run: RunDir, records: list[TrialRecord]) -> Path | None:
    from autodropout.runs.plot import plot_search_progress

    points = [(r.index, r.reward if r.status == "done" else None) for r in records if r.status in ENDED]
    try:
        return plot_search_progress(run.progress_plot, points, run.trials, run.experiment.name)
    except Exception:  # a picture must never cost the results
        logger.exception("could not draw %s", run.progress_plot)
        return None


def _checkpoints_kept(run: RunDir) -> int:
    return sum(1 for _ in run.experiment_dir.glob(f"*/checkpoint_*/{STATE_FILE}"))
