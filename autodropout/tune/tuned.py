"""A hand-designed regularizer with its parameters tuned on validation on Ray Tune, at a given trial
budget: what a user with Ray Tune would do instead of a pattern search, done until it converges.

:class:`LatticeSearcher` suggests the two rounds of :mod:`autodropout.tune.lattice`: a lattice over
the whole domain (a rate's range cut into equal cells, one trial at each midpoint; block sizes
spread across the rates), then, once those trials have ended, a finer lattice around their best.
It was chosen over Ray Tune's random search (what this module ran before), Optuna's TPE and a
plain lattice by ``benchmarks/tuner_convergence.py`` (docs/study.md). Every trial is an ordinary
:class:`~autodropout.runs.trial.Trial` config trained by :func:`~autodropout.tune.trainable.train_trial`,
exactly as a search trains its patterns, with the same training seed (common random numbers). The
Tune experiment is ``OUTPUT/trials`` with one ``trial_<index>_<id>`` folder per trial, so
:func:`autodropout.runs.read_trials` reads it back like a search. A run whose driver was killed
continues with :func:`resume_tuned`: the searcher's saved state (the settings still to run, the live
trials, every ended trial's reward) is restored with Tune's experiment state, so the total stays at
the budget and the second round refines around the same best. Under the experiment's
``search.scheduler`` the tuning gets the very trial scheduler a search of that experiment gets
(:func:`autodropout.tune.tuner.scheduler`), so a tuned baseline and a search arm are charged the
same epochs; a trial the scheduler stopped never counts as the tuning's best.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher

from autodropout.controller.searcher import EPOCH_KEY
from autodropout.core.atomic import atomic_write
from autodropout.runs import Trial
from autodropout.runs.experiment import ExperimentConfig
from autodropout.runs.run_dir import EXPERIMENT_NAME
from autodropout.tasks import Regularization, build_task
from autodropout.tune.checkpoint_repair import CheckpointRepair
from autodropout.tune.lattice import Domain, design, refined, rounds
from autodropout.tune.trainable import train_trial
from autodropout.tune.tuner import scheduler, trial_dirname


class LatticeSearcher(Searcher):
    """Suggests ``{"regularizer": {"params": ...}}`` for the two rounds of ``trials`` settings of
    ``domains`` (:func:`~autodropout.tune.lattice.rounds`); the second round is planned when
    every first-round trial has ended, around the best one by ``metric`` (a failed trial, or one
    without a finite ``metric``, or one that ended below ``epochs``, the full schedule, because a
    trial scheduler stopped it, never counts as best). At most ``max_concurrent`` live trials; the
    whole state is saved and restored (Tune does not call :meth:`set_search_properties` again on a
    restore, so ``metric`` and ``mode`` are part of it).
    """

    def __init__(self, domains: Mapping[str, Domain], trials: int, metric: str = "reward", mode: str = "max",
                 max_concurrent: int | None = None, epochs: int | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.epochs = epochs
        self.domains = {name: list(spec) for name, spec in domains.items()}
        self.first, self.second = rounds(self.domains, trials)
        self.max_concurrent = max_concurrent
        self.pending: list[dict[str, Any]] = design(self.domains, self.first)
        self.live: dict[str, dict[str, Any]] = {}
        self.ended: list[dict[str, Any]] = []  # {"params": ..., "score": higher is better, None if failed}
        self.refining = self.second == 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # ours, from the constructor, win

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.pending and not self.refining:
            if self.live:
                return None  # the second round waits for the first one's best
            self.pending, self.refining = refined(self.domains, self.first, self.second, self.best()), True
        if not self.pending:
            return Searcher.FINISHED
        if self.max_concurrent is not None and len(self.live) >= self.max_concurrent:
            return None
        self.live[trial_id] = self.pending.pop(0)
        return {"regularizer": {"params": dict(self.live[trial_id])}}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.live:
            return  # a duplicate completion
        value = None if error or not result else result.get(self.metric)
        usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        epoch = result.get(EPOCH_KEY) if result else None
        if self.epochs is not None and isinstance(epoch, int) and epoch < self.epochs:
            # stopped by the scheduler: a lower-fidelity reward ranks rates the wrong way (docs/search.md)
            usable = False
        score = (float(value) if self.mode == "max" else -float(value)) if usable else None
        self.ended.append({"params": self.live.pop(trial_id), "score": score})

    def best(self) -> dict[str, Any]:
        """The ended trial with the best score (the first of equals); before any, the first setting."""
        scored = [e for e in self.ended if e["score"] is not None]
        if not scored:
            return design(self.domains, self.first)[0]
        return max(scored, key=lambda e: e["score"])["params"]

    def get_state(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "epochs": self.epochs, "domains": self.domains,
                "first": self.first,
                "second": self.second, "max_concurrent": self.max_concurrent, "pending": self.pending,
                "live": self.live, "ended": self.ended, "refining": self.refining}

    def set_state(self, state: dict[str, Any]) -> None:
        self._metric, self._mode = state["metric"], state["mode"]
        self.epochs = state.get("epochs")  # states saved before schedulers reached tunings have none
        for key in ("domains", "first", "second", "max_concurrent", "pending", "live", "ended", "refining"):
            setattr(self, key, state[key])

    def save(self, checkpoint_path: str) -> None:
        atomic_write(checkpoint_path, json.dumps(self.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(json.loads(Path(checkpoint_path).read_text()))


def experiment_dir(output: str | Path) -> Path:
    """Where the Tune experiment of a tuned run in ``output`` lives."""
    return Path(output) / EXPERIMENT_NAME


def restorable(tune_experiment: str | Path) -> bool:
    """Whether a Tune experiment folder holds a saved state that ``Tuner.restore`` can continue."""
    # Tune reads a relative path as a URI without a scheme and raises (pyarrow): give it an absolute one.
    path = Path(tune_experiment).resolve()
    return path.is_dir() and tune.Tuner.can_restore(str(path))


def tune_regularizer(experiment: ExperimentConfig, name: str, domains: Mapping[str, Domain], output: str | Path,
                     trials: int, seed: int, concurrency: int | None = None) -> Path:
    """Tune ``name``'s parameters (``domains``) on ``experiment``'s validation metric with ``trials``
    trials of :class:`LatticeSearcher` under ``experiment.search.scheduler``; every trial trains with
    training seed ``seed`` (common random numbers, as a search). Returns the Tune experiment folder. Ray
    must be connected (:func:`~autodropout.tune.cluster.connect`).
    """
    search = experiment.search
    task = build_task(experiment.task)
    config = Trial(experiment.task, Regularization(name=name), seed, label=name).to_config()
    epochs = experiment.task.train.epochs
    searcher = LatticeSearcher(domains, trials, metric="reward", mode="max", epochs=epochs)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        _trainable(task, experiment),
        param_space=config,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency or search.concurrency),
            num_samples=trials, metric="reward", mode="max", reuse_actors=True,
            trial_dirname_creator=trial_dirname, scheduler=scheduler(search, epochs),
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT_NAME, storage_path=str(output.resolve()),
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=0,
            callbacks=[CheckpointRepair()],
        ),
    )
    tuner.fit()
    return experiment_dir(output)


def resume_tuned(experiment: ExperimentConfig, tune_experiment: str | Path) -> Path:
    """Continue a tuned run whose driver stopped (even by SIGKILL): finished trials stay, the
    interrupted ones continue from their last checkpoint, the settings not started yet are trained."""
    task = build_task(experiment.task)
    tuner = tune.Tuner.restore(str(Path(tune_experiment).resolve()), trainable=_trainable(task, experiment),
                               resume_unfinished=True, resume_errored=False)
    tuner.fit()
    return Path(tune_experiment)


def _trainable(task: Any, experiment: ExperimentConfig) -> Any:
    resources = {"cpu": experiment.search.cpus_per_trial, "gpu": experiment.search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, data=task.data), resources)
