"""Which trial checkpoints a search keeps once trials have ended (``search.keep_checkpoints``).

Every epoch a trial reports a checkpoint of its full training state (model, optimizer, RNGs), and
Ray keeps the latest one per trial (``CheckpointConfig(num_to_keep=1)``) so that a failed or
interrupted trial resumes where it stopped. Once a trial has ended that state is only useful to look
at the trained model, and at the paper's scale (thousands of trials) keeping it for every trial
would be terabytes. So when a trial ends, this Tune callback *releases* its checkpoint unless the
policy keeps it:

* ``best`` (default): keep the checkpoints of the ``search.top_k`` best completed trials (those
  behind ``best_patterns.json``); a trial pushed out of the top k is released then;
* ``none``: release every ended trial's checkpoint; ``all``: release nothing.

Releasing deletes the training state (``state.pt``) but leaves the checkpoint folder with the
trial's final metrics (``metrics.json``, a few hundred bytes), so the folder Ray's experiment state
names still exists. That matters when the driver is killed before the state recording the trial as
ended reaches storage: the resumed search then restores the trial from that folder, and the
trainable, finding final metrics and no training state, reports them again instead of training
(:func:`~autodropout.tune.trainable.train_trial`). Checkpoints of running trials are never
touched.
"""
from __future__ import annotations

import logging
import math
import posixpath
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)

#: The files of a trial checkpoint written by the trainable.
STATE_FILE = "state.pt"
METRICS_FILE = "metrics.json"


class KeepCheckpoints(Callback):
    """Tune callback applying a ``keep_checkpoints`` policy (see the module docstring)."""

    def __init__(self, policy: str, top_k: int) -> None:
        if policy not in ("none", "best", "all"):
            raise ValueError(f"keep_checkpoints: expected none, best or all, got {policy!r}")
        self.policy, self.top_k = policy, top_k
        self._kept: list[tuple[float, int, Any]] | None = None  # (reward, order, trial), best first

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_kept": None}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._kept is not None:
            return
        # First step of a (resumed) run: apply the policy to trials that ended before, in case the
        # previous driver stopped before it could.
        self._kept = []
        for trial in trials:
            if trial.status == Trial.TERMINATED:
                self._ended(trial)
            elif trial.status == Trial.ERROR:
                release(trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._kept is not None:
            self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        release(trial)

    def _ended(self, trial: Any) -> None:
        if self.policy == "all":
            return
        reward = (trial.last_result or {}).get("reward")
        usable = isinstance(reward, (int, float)) and math.isfinite(reward)
        if self.policy == "none" or not usable:
            release(trial)
            return
        assert self._kept is not None
        self._kept.append((float(reward), len(self._kept), trial))
        self._kept.sort(key=lambda entry: (-entry[0], entry[1]))
        while len(self._kept) > self.top_k:
            release(self._kept.pop()[2])


def release(trial: Any) -> bool:
    """Delete the training state of ``trial``'s latest checkpoint, keeping its metrics file; returns
    whether anything was deleted."""
    checkpoint = trial.checkpoint
    if checkpoint is None:
        return False
    state = posixpath.join(checkpoint.path, STATE_FILE)
    fs = checkpoint.filesystem
    try:
        if fs.get_file_info(state).type == pyarrow.fs.FileType.NotFound:
            return False
        fs.delete_file(state)
    except OSError as exc:  # disk space is not worth failing a search for
        logger.warning("could not delete %s: %s", state, exc)
        return False
    return True
