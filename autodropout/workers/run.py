"""The search driver: the run folder, the Ray Tuner with the controller, resume, and the summary.

The run folder's layout is :class:`~autodropout.runs.run_dir.RunDir`'s.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import ConcurrencyLimiter

from autodropout.config import to_dict
from autodropout.controller.listeners import Broadcast, SearcherCheckpoint
from autodropout.controller.searcher import BaseSearcher, ControllerSearcher, RandomSearcher
from autodropout.controller.tensorboard import ControllerLogger
from autodropout.experiment import ExperimentConfig
from autodropout.runs import RunDir, RunDirError, export_run
from autodropout.runs.run_dir import EXPERIMENT_NAME
from autodropout.tasks import Task, build_task, task_sites
from autodropout.workers.checkpoint_repair import CheckpointRepair
from autodropout.workers.cluster import check_resources, connect
from autodropout.workers.progress import ProgressPrinter
from autodropout.workers.trainable import train_trial


@dataclass
class SearchSummary:
    run_dir: Path
    trials: int
    failed: int
    best_reward: float | None
    best_metric: float | None
    metric: str
    first_mean: float | None
    last_mean: float | None
    wall_seconds: float
    best_patterns: Path | None
    trials_table: Path

    def text(self) -> str:
        lines = [f"search finished: {self.trials} trials ({self.failed} failed) in {self.wall_seconds:.0f}s"]
        if self.best_reward is not None:
            lines.append(f"best reward {self.best_reward:.4f} (validation {self.metric} {self.best_metric:.4f})")
        if self.first_mean is not None and self.last_mean is not None:
            lines.append(f"mean reward moved from {self.first_mean:.4f} (first third of trials) "
                         f"to {self.last_mean:.4f} (last third)")
        lines.append(f"outputs: {self.run_dir}")
        if self.best_patterns:
            lines.append(f"  best patterns: {self.best_patterns}")
        lines.append(f"  trials table:  {self.trials_table}")
        lines.append(f"  TensorBoard:   tensorboard --logdir {self.run_dir}")
        return "\n".join(lines)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_search(experiment: ExperimentConfig, output: Path | None = None, address: str | None = None,
               seed: int | None = None, quiet: bool = False) -> SearchSummary:
    """Run a new search described by ``experiment`` into the run folder ``output``."""
    search = experiment.search
    path = RunDir.check_new(Path(output) if output else default_run_dir(experiment.name))
    resources = connect(address)
    check_resources(resources, search.cpus_per_trial, search.gpus_per_trial)
    task = build_task(experiment.task)
    space = task.search_space(search.values)
    seed = experiment.task.train.seed if seed is None else seed
    run = RunDir.create(path, experiment, space, task.metric, seed)
    searcher = _make_searcher(run)
    if not quiet:
        print(f"autodropout search {experiment.name}: {search.trials} trials, {search.concurrency} at a time, "
              f"{search.controller} controller, {space.kind} space of {space.num_sites} sites "
              f"({float(space.size):.2g} patterns); run folder {run.path}", flush=True)
    tuner = tune.Tuner(
        _trainable(task, search),
        param_space={"task": to_dict(experiment.task), "space": {"kind": space.kind, **space.config()}},
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.concurrency),
            num_samples=search.trials, metric="reward", mode="max", reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=_run_config(run, task, quiet),
    )
    return _fit_and_finish(tuner, run, task, quiet)


def resume_search(run_dir: Path, address: str | None = None, quiet: bool = False) -> SearchSummary:
    """Continue a search whose driver stopped (even by SIGKILL) from its run folder."""
    run = RunDir.open(run_dir)
    if not tune.Tuner.can_restore(str(run.experiment_dir)):
        raise RunDirError(f"{run.path}: the Tune experiment {run.experiment_dir} cannot be restored "
                          "(it has no saved state yet: start a new search instead)")
    connect(address)
    task = build_task(run.experiment.task)
    tuner = tune.Tuner.restore(str(run.experiment_dir), trainable=_trainable(task, run.experiment.search),
                               resume_unfinished=True, resume_errored=False)
    return _fit_and_finish(tuner, run, task, quiet)


def trial_dirname(trial: Any) -> str:
    """``trial_<creation index>_<trial id>``: short (Tune's default embeds the whole pattern config)
    and sorting in creation order, i.e. in the order the controller sampled the patterns."""
    index = int(trial.experiment_tag.split("_", 1)[0])  # the search generator's trial counter
    return f"trial_{index:05d}_{trial.trial_id}"


def _make_searcher(run: RunDir) -> BaseSearcher:
    s = run.experiment.search
    sites = task_sites(run.experiment.task)
    listener = Broadcast([ControllerLogger(run.tensorboard_dir, site_shapes=sites.shapes if sites else None),
                          SearcherCheckpoint(run.controller_state)])
    if s.controller == "random":
        return RandomSearcher(run.space, metric="reward", mode="max", seed=run.seed, on_update=listener)
    return ControllerSearcher(
        run.space, metric="reward", mode="max", seed=run.seed, samples_per_update=s.samples_per_update,
        lr=s.controller_lr, entropy_weight=s.entropy_weight, baseline_decay=s.baseline_decay,
        hidden=s.hidden, temperature=s.temperature, tanh_constant=s.tanh_constant, on_update=listener,
    )


def _trainable(task: Task, search: Any) -> Any:
    # The dataset goes through the object store once instead of being reloaded by every trial.
    resources = {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, data=task.data), resources)


def _run_config(run: RunDir, task: Task, quiet: bool) -> tune.RunConfig:
    experiment = run.experiment
    return tune.RunConfig(
        name=EXPERIMENT_NAME,
        storage_path=str(run.experiment_dir.parent),
        failure_config=tune.FailureConfig(max_failures=experiment.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        verbose=0,
        # Tuner.restore reuses this run config, so the repair is in place for any later --resume.
        callbacks=[CheckpointRepair()] + ([] if quiet else [ProgressPrinter(experiment.search.trials, task.metric)]),
    )


def _fit_and_finish(tuner: tune.Tuner, run: RunDir, task: Task, quiet: bool) -> SearchSummary:
    began = time.perf_counter()
    tuner.fit()
    wall = time.perf_counter() - began
    exported = export_run(run, top=run.experiment.search.top_k)
    valid = [r for r in exported.records if r.reward is not None and r.status == "done"]
    third = max(1, len(valid) // 3)
    best = max(valid, key=lambda r: r.reward, default=None)
    summary = SearchSummary(
        run_dir=run.path, trials=len(exported.records),
        failed=sum(r.status == "error" for r in exported.records),
        best_reward=best.reward if best else None, best_metric=best.metric if best else None,
        metric=task.metric,
        first_mean=_mean([r.reward for r in valid[:third]]), last_mean=_mean([r.reward for r in valid[-third:]]),
        wall_seconds=wall, best_patterns=exported.patterns_file, trials_table=exported.table_file,
    )
    if not quiet:
        print(summary.text(), file=sys.stdout, flush=True)
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None

