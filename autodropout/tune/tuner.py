"""The Ray Tuner of a search: new, restored after a stop, or restored and extended.

A search is one Tune experiment (the run folder's ``trials/``) for its whole life, however often it
is stopped, resumed or extended, so trial indices stay unique and in sampling order and one folder
holds every trial. Three things of Ray Tune 2.60 shape how:

* ``Tuner.restore`` takes the search algorithm, the callbacks and the run settings from the
  ``tuner.pkl`` that ``Tuner(...)`` wrote when the experiment was created
  (``ray/tune/impl/tuner_internal.py``, ``_restore_from_path_or_uri``); the restored controller then
  replaces their state with the latest saved one (``TuneController.resume`` ->
  ``SearchGenerator.restore_from_dir``: the trial counter, the number of trials to create and our
  searcher's full state). Every resume therefore first writes a fresh ``tuner.pkl`` (built by
  ``Tuner(...)`` in a staging folder and moved over the old one atomically), so a resumed search runs
  with this version's callbacks and knows how many trials the run is now to have.
* The number of trials lives in the search generator's saved state (``total_samples``), and a
  restore ignores ``num_samples``. :class:`ExtendableSearch` is Tune's own ``SearchGenerator`` whose
  restored total is raised to the run's ``search.trials`` when that is larger: the generator then
  creates the further trials, numbered on from its restored counter, with the restored controller.
* The generator's saved state also holds the ``Experiment`` it creates trials from, with the storage
  location of the run's first session. ``TuneController._restore_trials`` points the restored trials
  at the folder the experiment is restored from, but nothing does so for that ``Experiment``, so a run
  folder that was moved or copied would create its new trials in the old place (into the original of
  a copy). :class:`ExtendableSearch` points it at the run's experiment folder the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray import tune
from ray.train._internal.storage import get_fs_and_path
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator

from autodropout.controller.searcher import EPOCH_KEY
from autodropout.core.atomic import atomic_write
from autodropout.core.config import to_dict
from autodropout.runs import RunDir
from autodropout.runs.experiment import SearchConfig
from autodropout.runs.run_dir import EXPERIMENT_NAME
from autodropout.search_spaces import space_to_json
from autodropout.tasks import Task
from autodropout.tune.checkpoint_repair import CheckpointRepair
from autodropout.tune.checkpoints import KeepCheckpoints
from autodropout.tune.interrupt import ForwardStop
from autodropout.tune.progress import SearchProgress, trial_index
from autodropout.tune.trainable import train_trial

#: The file ``Tuner(...)`` writes into the experiment folder (``tuner_internal.py``, ``_TUNER_PKL``).
TUNER_FILE = "tuner.pkl"


class ExtendableSearch(SearchGenerator):
    """Tune's search generator over our searcher, with a number of trials that a restore can raise,
    creating its trials under ``storage_path`` (the folder holding the run's Tune experiment) after a
    restore too (see the module docstring)."""

    def __init__(self, searcher: Searcher, trials: int, storage_path: str) -> None:
        super().__init__(searcher)
        self.trials = trials
        self.storage_path = storage_path

    def set_state(self, state: dict[str, Any]) -> None:
        if state["total_samples"] < self.trials:
            state = {**state, "total_samples": self.trials, "finished": False}
        super().set_state(state)
        # As TuneController._restore_trials does for the restored trials (the same two attributes).
        storage = self._experiment.storage
        storage.storage_filesystem, storage.storage_fs_path = get_fs_and_path(self.storage_path, None)


def trial_dirname(trial: Any) -> str:
    """``trial_<creation index>_<trial id>``: short (Tune's default embeds the whole pattern config)
    and sorting in creation order, i.e. in the order the controller sampled the patterns."""
    return f"trial_{trial_index(trial):05d}_{trial.trial_id}"


def new_tuner(run: RunDir, task: Task, searcher: Searcher, quiet: bool, storage_path: Path | None = None,
              function: Any = None) -> tune.Tuner:
    """The Tuner of ``run``'s search (``storage_path``: where ``Tuner(...)`` writes its experiment
    folder, by default the run's; ``function``: the :func:`trainable`, if already made)."""
    search = run.experiment.search
    return tune.Tuner(
        function or trainable(task, search),
        param_space={"task": to_dict(run.experiment.task), **space_to_json(run.space)},
        tune_config=tune.TuneConfig(
            search_alg=ExtendableSearch(ConcurrencyLimiter(searcher, max_concurrent=search.concurrency), run.trials,
                                        str(run.experiment_dir.parent)),
            num_samples=run.trials, metric="reward", mode="max", reuse_actors=True,
            trial_dirname_creator=trial_dirname, scheduler=scheduler(search, run.experiment.task.train.epochs),
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT_NAME,
            storage_path=str(storage_path or run.experiment_dir.parent),
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
            callbacks=[CheckpointRepair(), ForwardStop(), KeepCheckpoints(search.keep_checkpoints, search.top_k)]
            + ([] if quiet else [SearchProgress(run.trials, task.metric, run.progress_plot, run.experiment.name)]),
        ),
    )


def restored_tuner(run: RunDir, task: Task, searcher: Searcher, quiet: bool) -> tune.Tuner:
    """The Tuner that continues ``run``'s experiment (see the module docstring); ``searcher`` is a
    fresh one, whose state the restore replaces with the saved one."""
    function = trainable(task, run.experiment.search)  # the data go to the object store once
    staging = Path(tempfile.mkdtemp(prefix=".tuner-", dir=run.experiment_dir.parent))
    try:
        new_tuner(run, task, searcher, quiet, storage_path=staging, function=function)
        os.replace(staging / EXPERIMENT_NAME / TUNER_FILE, run.experiment_dir / TUNER_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tune.Tuner.restore(str(run.experiment_dir), trainable=function, resume_unfinished=True, resume_errored=False)


def scheduler(search: SearchConfig, epochs: int) -> TrialScheduler | None:
    """Ray's trial scheduler of ``search.scheduler`` for a schedule of ``epochs`` (``None``: Tune's FIFO).

    ASHA keeps time in our ``epoch`` key: Ray's ``training_iteration`` counts reports and restarts at 1
    when a trial resumes, and a trial reports every ``eval_every`` epochs. A rung at epoch r is judged on
    a trial's first report at or after r."""
    if search.scheduler == "none":
        return None
    return ASHAScheduler(time_attr=EPOCH_KEY, max_t=epochs, grace_period=search.first_rung(epochs),
                         reduction_factor=search.reduction_factor)


def trainable(task: Task, search: Any) -> Any:
    # The dataset goes through the object store once instead of being reloaded by every trial.
    resources = {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, data=task.data), resources)


def save_controller_state(run: RunDir) -> None:
    """Copy the searcher state Tune saved last (with the experiment state it matches) to
    ``controller/state.pt``: after a stop, the run folder then holds the very controller a resume
    restores, suggestions made after the last completed trial included."""
    saved = sorted(run.experiment_dir.glob(Searcher.CKPT_FILE_TMPL.format("*")))
    if saved:
        run.controller_state.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(run.controller_state, saved[-1].read_bytes())
