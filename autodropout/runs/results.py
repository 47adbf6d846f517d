"""Reading a Tune experiment folder back into a trials table (works on interrupted runs too).

Each trial folder holds ``params.json`` (its :class:`~autodropout.runs.trial.Trial` config) and ``result.json``
(one JSON line per report); a failed trial also has ``error.txt``. Reading the folders rather
than the driver's memory means export and the table survive a killed driver, and a trial that was
retried appears once.

What happened to a trial is read from what it did, never from ``error.txt`` or ``done`` alone (Ray
2.60, docs/architecture.md): Ray appends to ``error.txt`` at every failure and never removes
it, so a trial retried after a failure (``search.max_failures``) that then completed still has one; and
no ``result.json`` line of a function trainable says ``done: true``. A trial is therefore done when its
last result reached the task's last epoch. One that did not was stopped early by a trial scheduler
(``search.scheduler``) when the experiment state (``experiment_state-*.json``, which Tune saves as it goes
and once more when the tuning loop ends) calls it ``TERMINATED``; it failed when that state calls it
``ERROR``, or, for a trial the state does not know (no state saved since it was created), when it has
``error.txt``; otherwise it is incomplete (running, being retried, or waiting for a resume).
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodropout.core.atomic import atomic_write
from autodropout.core.errors import UserInputError
from autodropout.runs.trial import Trial

logger = logging.getLogger(__name__)

#: The statuses of a trial that has ended: ran its schedule, stopped early by a scheduler, failed.
ENDED = ("done", "stopped", "error")

#: Tune's experiment state files (``TuneController.CKPT_FILE_TMPL``); the newest is the latest state.
STATE_FILES = "experiment_state-*.json"


class TrialReadError(UserInputError, ValueError):
    """A trial folder of the experiment cannot be read back; the message names the folder and why."""


@dataclass
class TrialRecord:
    """One trial folder read back: its trial, where it got to, and its last result."""

    index: int
    trial_id: str
    trial: Trial
    metric: float | None
    reward: float | None
    status: str
    duration_s: float
    epochs: int


def read_trials(experiment_dir: Path, metric: str) -> list[TrialRecord]:
    """All trials of a Tune experiment folder, in creation (= sampling) order.

    A trial whose config cannot be read (damaged, or written by a version whose configs no longer
    validate) raises :class:`TrialReadError`: skipping it would silently shrink the table and the
    export, and make a finished run look interrupted.
    """
    records = []
    statuses = trial_statuses(Path(experiment_dir))
    for params_file in sorted(Path(experiment_dir).glob("*/params.json")):
        folder = params_file.parent
        try:
            trial = Trial.from_config(json.loads(params_file.read_text()))
        except (OSError, json.JSONDecodeError, UserInputError) as exc:
            message = " ".join(str(exc).split())
            raise TrialReadError(f"{folder}: cannot read the trial's params.json ({message})") from None
        last = _last_result(folder / "result.json")
        index, trial_id = _parse_folder(folder.name)
        status = trial_outcome(folder, last, trial.task.train.epochs, statuses.get(trial_id))
        records.append(TrialRecord(
            index=index,
            trial_id=last.get("trial_id") or trial_id,
            trial=trial,
            metric=_number(last.get(metric)),
            reward=None if status == "error" else _number(last.get("reward")),
            status=status,
            duration_s=float(last.get("time_total_s", 0.0)) if last else 0.0,
            epochs=int(last.get("epoch", 0)) if last else 0,
        ))
    return sorted(records, key=lambda r: r.index)


def trial_outcome(folder: Path, last: dict[str, Any], epochs: int, status: str | None) -> str:
    """``done``, ``stopped``, ``error`` or ``incomplete``: what happened to a trial folder, from its last
    result and Tune's ``status`` for it (``None``: not in the experiment state yet). Ray 2.60 keeps
    ``error.txt`` after a retry that succeeded and never writes ``done: true`` for function trainables,
    so neither decides alone; a trial Tune calls TERMINATED below its last epoch was stopped by a
    scheduler (its reward is of a lower fidelity and never ranks it among finished trials)."""
    if last.get("epoch") == epochs:
        return "done"
    if status == "TERMINATED":
        return "stopped"
    if status == "ERROR" or (status is None and (folder / "error.txt").exists()):
        return "error"
    return "incomplete"


def trial_statuses(experiment_dir: Path) -> dict[str, str]:
    """Trial id -> Tune's status (``PENDING``, ``RUNNING``, ``PAUSED``, ``TERMINATED``, ``ERROR``) in
    the newest experiment state of a Tune experiment folder; empty if there is no readable state (a
    driver killed before its first save, or a state being rewritten)."""
    states = sorted(Path(experiment_dir).glob(STATE_FILES))  # named by session start time: the last is newest
    if not states:
        return {}
    try:
        # "trial_data" is a list of [trial state as a JSON string, run metadata as a JSON string]
        # (TuneController.save_to_dir, Trial.get_json_state); plain JSON, so no Ray is needed here.
        trials = [json.loads(state) for state, _ in json.loads(states[-1].read_text())["trial_data"]]
        return {t["trial_id"]: t["status"] for t in trials}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring %s (%s): trials are judged by their folders alone", states[-1].name, exc)
        return {}


def _last_result(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    last: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        try:
            last = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill: keep the last complete one
    return last


def _parse_folder(name: str) -> tuple[int, str]:
    # Folders are named "trial_<index>_<trial_id>" by workers.run.trial_dirname.
    _, index, trial_id = name.split("_", 2)
    return int(index), trial_id


def trial_id_of(folder_name: str) -> str | None:
    """The Tune trial id in a trial folder's name (``trial_<index>_<trial_id>``), or ``None``."""
    parts = folder_name.split("_", 2)
    return parts[2] if len(parts) == 3 else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def write_trials_csv(path: Path, records: list[TrialRecord], metric: str) -> Path:
    """The trials table, in creation order: index, trial id, status, metric, reward, epochs,
    duration, tokens, pattern (atomic write)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "trial_id", "status", metric, "reward", "epochs", "duration_s", "tokens", "pattern"])
    for r in records:
        pattern = r.trial.regularization.pattern
        writer.writerow([r.index, r.trial_id, r.status, _fmt(r.metric), _fmt(r.reward), r.epochs, f"{r.duration_s:.2f}",
                         " ".join(map(str, r.trial.tokens or [])),
                         json.dumps(pattern.to_json() if pattern else None, separators=(",", ":"))])
    return atomic_write(path, buffer.getvalue())


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(value)
