"""The search driver: run folder, Ray Tuner with the controller, resume, and the final outputs.

A run folder holds::

    config.yaml           the resolved experiment (after command-line overrides)
    run.json              where the Tune experiment lives (storage_path may be shared storage)
    controller/state.pt   the controller's latest state (torch.load(..., weights_only=True))
    tensorboard/          controller curves, choice histograms, best-pattern images
    trials/               the Tune experiment (unless storage_path points elsewhere): one folder per
                          trial with its TensorBoard events, progress.csv, result.json, checkpoints
    trials.csv            trial id, status, metric, reward, epochs, duration, tokens, pattern
    best_patterns.json    the top-k patterns in the pattern JSON format
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from autodropout.atomic import atomic_write
from autodropout.config import ConfigError, ExperimentConfig, UserInputError, experiment_from_dict, to_dict
from autodropout.controller.searcher import BaseSearcher, ControllerSearcher, RandomSearcher
from autodropout.controller.tensorboard import ControllerLogger
from autodropout.export import export_run
from autodropout.tasks import Task, build_task
from autodropout.workers.checkpoint_repair import CheckpointRepair
from autodropout.workers.cluster import check_resources, connect
from autodropout.workers.progress import ProgressPrinter
from autodropout.workers.trainable import train_pattern

RUN_FILE = "run.json"
EXPERIMENT_NAME = "trials"


class RunDirError(UserInputError, ValueError):
    """The folder given is not a search run folder (or cannot become one)."""


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
        lines.append(f"  trials table:  {self.run_dir / 'trials.csv'}")
        lines.append(f"  TensorBoard:   tensorboard --logdir {self.run_dir}")
        return "\n".join(lines)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_search(experiment: ExperimentConfig, output: Path | None = None, address: str | None = None,
               seed: int | None = None, quiet: bool = False) -> SearchSummary:
    """Run a new search described by ``experiment`` into the run folder ``output``."""
    run_dir = Path(output) if output else default_run_dir(experiment.name)
    if run_dir.exists() and any(run_dir.iterdir()):
        hint = " (it is a run: use --resume)" if (run_dir / RUN_FILE).exists() else ""
        raise RunDirError(f"{run_dir}: output folder exists and is not empty{hint}")
    search = experiment.search
    resources = connect(address)
    check_resources(resources, search.cpus_per_trial, search.gpus_per_trial)
    task = build_task(experiment.task)
    space = task.search_space(search.values)
    seed = experiment.task.train.seed if seed is None else seed

    run_dir.mkdir(parents=True, exist_ok=True)
    storage = Path(search.storage_path).expanduser().resolve() if search.storage_path else run_dir.resolve()
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(_as_plain(experiment), sort_keys=False))
    atomic_write(run_dir / RUN_FILE, json.dumps({
        "format": "autodropout.run", "version": 1, "experiment_dir": str(storage / EXPERIMENT_NAME),
        "seed": seed, "metric": task.metric, "space": space.kind,
    }, indent=1))
    searcher = _make_searcher(experiment, space, seed, run_dir)
    if not quiet:
        print(f"autodropout search {experiment.name}: {search.trials} trials, {search.concurrency} at a time, "
              f"{search.controller} controller, {space.kind} space of {space.num_sites} sites "
              f"({float(space.size):.2g} patterns); run folder {run_dir}", flush=True)
    tuner = tune.Tuner(
        _trainable(task, search),
        param_space={"task": to_dict(experiment.task), "space_values": dict(search.values)},
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.concurrency),
            num_samples=search.trials, metric="reward", mode="max", reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=_run_config(experiment, storage, task, quiet),
    )
    return _fit_and_finish(tuner, run_dir, experiment, task, quiet)


def resume_search(run_dir: Path, address: str | None = None, quiet: bool = False) -> SearchSummary:
    """Continue a search whose driver stopped (even by SIGKILL) from its run folder."""
    run_dir = Path(run_dir)
    info_file = run_dir / RUN_FILE
    if not info_file.exists():
        raise RunDirError(f"{run_dir}: not a search run folder (no {RUN_FILE})")
    try:
        info = json.loads(info_file.read_text())
        experiment = experiment_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    except (OSError, json.JSONDecodeError, yaml.YAMLError, ConfigError) as exc:
        raise RunDirError(f"{run_dir}: damaged run folder: {exc}") from None
    experiment_dir = info["experiment_dir"]
    if not tune.Tuner.can_restore(experiment_dir):
        raise RunDirError(f"{run_dir}: the Tune experiment {experiment_dir} cannot be restored "
                          "(it has no saved state yet: start a new search instead)")
    connect(address)
    task = build_task(experiment.task)
    tuner = tune.Tuner.restore(experiment_dir, trainable=_trainable(task, experiment.search),
                               resume_unfinished=True, resume_errored=False)
    return _fit_and_finish(tuner, run_dir, experiment, task, quiet)


def trial_dirname(trial: Any) -> str:
    """``trial_<creation index>_<trial id>``: short (Tune's default embeds the whole pattern config)
    and sorting in creation order, i.e. in the order the controller sampled the patterns."""
    index = int(trial.experiment_tag.split("_", 1)[0])  # the search generator's trial counter
    return f"trial_{index:05d}_{trial.trial_id}"


def _make_searcher(experiment: ExperimentConfig, space: Any, seed: int, run_dir: Path) -> BaseSearcher:
    s = experiment.search
    logger = ControllerLogger(run_dir)
    if s.controller == "random":
        return RandomSearcher(space, metric="reward", mode="max", seed=seed, on_update=logger)
    return ControllerSearcher(
        space, metric="reward", mode="max", seed=seed, samples_per_update=s.samples_per_update,
        lr=s.controller_lr, entropy_weight=s.entropy_weight, baseline_decay=s.baseline_decay,
        hidden=s.hidden, temperature=s.temperature, tanh_constant=s.tanh_constant, on_update=logger,
    )


def _trainable(task: Task, search: Any) -> Any:
    # The dataset goes through the object store once instead of being reloaded by every trial.
    resources = {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_pattern, data=task.data), resources)


def _run_config(experiment: ExperimentConfig, storage: Path, task: Task, quiet: bool) -> tune.RunConfig:
    return tune.RunConfig(
        name=EXPERIMENT_NAME,
        storage_path=str(storage),
        failure_config=tune.FailureConfig(max_failures=experiment.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        verbose=0,
        # Tuner.restore reuses this run config, so the repair is in place for any later --resume.
        callbacks=[CheckpointRepair()] + ([] if quiet else [ProgressPrinter(experiment.search.trials, task.metric)]),
    )


def _fit_and_finish(tuner: tune.Tuner, run_dir: Path, experiment: ExperimentConfig, task: Task,
                    quiet: bool) -> SearchSummary:
    began = time.perf_counter()
    tuner.fit()
    wall = time.perf_counter() - began
    exported = export_run(run_dir, top=experiment.search.top_k)
    valid = [r for r in exported.records if r.reward is not None and r.status == "done"]
    third = max(1, len(valid) // 3)
    best = max(valid, key=lambda r: r.reward, default=None)
    summary = SearchSummary(
        run_dir=run_dir, trials=len(exported.records),
        failed=sum(r.status == "error" for r in exported.records),
        best_reward=best.reward if best else None, best_metric=best.metric if best else None,
        metric=task.metric,
        first_mean=_mean([r.reward for r in valid[:third]]), last_mean=_mean([r.reward for r in valid[-third:]]),
        wall_seconds=wall, best_patterns=exported.patterns_file,
    )
    if not quiet:
        print(summary.text(), file=sys.stdout, flush=True)
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _as_plain(experiment: ExperimentConfig) -> dict[str, Any]:
    plain = dataclasses.asdict(experiment)
    return json.loads(json.dumps(plain, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))
