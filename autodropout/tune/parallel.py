"""Transfer runs on Ray Tune: a grid over (method, seed), trained by the search's own trainable.

Each grid cell is one Tune trial of :func:`~autodropout.tune.trainable.train_trial` on the
method's :class:`~autodropout.runs.trial.Trial` with the cell's seed. The dataset and the method
table go through the object store once (``tune.with_parameters``). When a trial ends,
its final model weights are read back from its last checkpoint, so the driver can evaluate every
model on validation and test with the same code as a sequential run.
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from autodropout.runs import Trial
from autodropout.tune.checkpoint_repair import CheckpointRepair
from autodropout.tune.checkpoints import STATE_FILE
from autodropout.tune.cluster import check_resources, connect
from autodropout.tune.trainable import train_trial
from autodropout.tune.tuner import trial_dirname

#: The Tune experiment's name inside ``storage`` (see :func:`run_grid`).
GRID_NAME = "grid"


def train_method(config: dict[str, Any], data: Any = None, methods: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Tune function trainable: :func:`train_trial` of method ``config["label"]`` with seed ``config["seed"]``."""
    train_trial({**methods[config["label"]], "seed": config["seed"]}, data=data)


@dataclass
class GridResult:
    """One finished grid cell: the final model weights and last result (validation metric, reward), or
    the error that stopped it."""

    method: str
    seed: int
    state: dict[str, torch.Tensor] | None
    seconds: float
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class _Progress(tune.Callback):
    """One line per finished cell on stderr."""

    def __init__(self, total: int, metric: str) -> None:
        self.total, self.metric, self.done, self.began = total, metric, 0, time.perf_counter()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        value = (trial.last_result or {}).get(self.metric)
        self._line(trial, f"validation {self.metric} {value:.4g}" if isinstance(value, float) else "no result")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "FAILED")

    def _line(self, trial: Any, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {trial.config['label']} seed {trial.config['seed']}: {text} "
              f"({time.perf_counter() - self.began:.0f}s)", file=sys.stderr, flush=True)


def run_grid(
    task: Any,
    trials: Sequence[Trial],
    seeds: Sequence[int],
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    progress: bool = True,
    storage: str | Path | None = None,
) -> Iterator[GridResult]:
    """Train every (method, seed) on Ray and yield the results in grid order.

    Args:
        task: the built task (its data is shared with the trials).
        trials: one labelled trial per method (their seeds are replaced by ``seeds``).
        seeds: training seeds.
        cpus_per_trial, gpus_per_trial: resources of one trial.
        progress: print one line per finished trial.
        storage: keep the Tune experiment in ``storage/grid`` (one ``trial_<index>_<id>`` folder per
            cell) instead of a temporary folder. A later call with the same ``storage`` and the same
            grid, after the driver was killed, restores it: finished cells are read back from their
            last checkpoint, interrupted ones continue from theirs.

    A Ray instance started here is shut down when the generator is exhausted or closed.
    """
    methods = {trial.label: trial.to_config() for trial in trials}
    started_here = not ray.is_initialized()
    check_resources(connect(), cpus_per_trial, gpus_per_trial)
    try:
        with _storage(storage) as folder:
            trainable = tune.with_resources(
                tune.with_parameters(train_method, data=task.data, methods=methods),
                {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
            )
            path = Path(folder) / GRID_NAME
            if storage is not None and tune.Tuner.can_restore(str(path)):
                tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                                           resume_errored=False)
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space={"label": tune.grid_search(list(methods)), "seed": tune.grid_search(list(seeds))},
                    tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True, trial_dirname_creator=trial_dirname),
                    run_config=tune.RunConfig(
                        name=GRID_NAME, storage_path=str(folder), verbose=0,
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                        callbacks=[CheckpointRepair()]
                        + ([_Progress(len(methods) * len(seeds), task.metric)] if progress else []),
                    ),
                )
            grid = tuner.fit()
            if any(result.config is None for result in grid):  # Tune stopped on Ctrl-C before every cell ran
                raise KeyboardInterrupt
            order = {(m, s): i for i, (m, s) in enumerate((m, s) for m in methods for s in seeds)}
            for result in sorted(grid, key=lambda r: order[(r.config["label"], r.config["seed"])]):
                yield _read(result)
    finally:
        if started_here:
            ray.shutdown()


def _storage(storage: str | Path | None) -> Any:
    if storage is None:
        return tempfile.TemporaryDirectory(prefix="autodropout-grid-")
    Path(storage).mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(Path(storage).resolve()))


def _read(result: Any) -> GridResult:
    method, seed = result.config["label"], result.config["seed"]
    seconds = float((result.metrics or {}).get("time_total_s", 0.0))
    if result.error is not None or result.checkpoint is None:
        error = str(result.error).strip().splitlines()[-1] if result.error is not None else "no checkpoint"
        return GridResult(method, seed, None, seconds, error)
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, weights_only=True)["model"]
    return GridResult(method, seed, state, seconds, metrics=dict(result.metrics or {}))
