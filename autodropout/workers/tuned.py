"""A hand-designed regularizer with its rate tuned on validation by a Ray Tune searcher that ships with
Ray (what a user with Ray Tune would do instead of a pattern search), at a given trial budget.

The trials are ordinary :class:`~autodropout.runs.trial.Trial` configs whose regularizer parameters are
Tune domains (``tune.uniform`` for rates, ``tune.choice`` for block sizes); Tune's
``BasicVariantGenerator`` (random search, seeded) draws them and :func:`~autodropout.workers.trainable.train_trial`
trains them, exactly as a search trains its patterns. The Tune experiment is ``OUTPUT/trials`` with one
``trial_<index>_<id>`` folder per trial, so :func:`autodropout.runs.read_trials` reads it back like a
search. A run whose driver was killed continues with :func:`resume_tuned`: the generator's state (its
random state and the samples drawn) is part of Tune's experiment state, so the total stays at the budget.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune
from ray.tune.search import BasicVariantGenerator

from autodropout.errors import ConfigError
from autodropout.experiment import ExperimentConfig
from autodropout.runs import Trial
from autodropout.runs.run_dir import EXPERIMENT_NAME
from autodropout.tasks import Regularization, build_task
from autodropout.workers.checkpoint_repair import CheckpointRepair
from autodropout.workers.trainable import train_trial
from autodropout.workers.tuner import trial_dirname

#: A domain as plain data (JSON-able, so it can live in a study's plan): ``["uniform", low, high]`` or
#: ``["choice", [v1, v2, ...]]``.
Domain = Sequence[Any]


def to_tune_domain(spec: Domain) -> Any:
    """``["uniform", 0.0, 0.5]`` -> ``tune.uniform(0.0, 0.5)``; ``["choice", [3, 5]]`` -> ``tune.choice([3, 5])``."""
    kind, *args = spec
    if kind == "uniform" and len(args) == 2:
        return tune.uniform(float(args[0]), float(args[1]))
    if kind == "choice" and len(args) == 1 and list(args[0]):
        return tune.choice(list(args[0]))
    raise ConfigError(f"tuned domain {list(spec)!r}: expected ['uniform', low, high] or ['choice', [values]]")


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
    random samples; every trial trains with training seed ``seed`` (common random numbers, as a
    search). Returns the Tune experiment folder. Ray must be connected (:func:`~autodropout.workers.cluster.connect`).
    """
    search = experiment.search
    task = build_task(experiment.task)
    config = Trial(experiment.task, Regularization(name=name), seed, label=name).to_config()
    config["regularizer"]["params"] = {key: to_tune_domain(spec) for key, spec in domains.items()}
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        _trainable(task, experiment),
        param_space=config,
        tune_config=tune.TuneConfig(
            search_alg=BasicVariantGenerator(random_state=seed, max_concurrent=concurrency or search.concurrency),
            num_samples=trials, metric="reward", mode="max", reuse_actors=True,
            trial_dirname_creator=trial_dirname,
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
    interrupted ones continue from their last checkpoint, the rest are drawn and trained."""
    task = build_task(experiment.task)
    tuner = tune.Tuner.restore(str(Path(tune_experiment).resolve()), trainable=_trainable(task, experiment),
                               resume_unfinished=True, resume_errored=False)
    tuner.fit()
    return Path(tune_experiment)


def _trainable(task: Any, experiment: ExperimentConfig) -> Any:
    resources = {"cpu": experiment.search.cpus_per_trial, "gpu": experiment.search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, data=task.data), resources)
