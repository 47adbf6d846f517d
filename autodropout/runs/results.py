"""Reading a Tune experiment folder back into a trials table (works on interrupted runs too).

Each trial folder holds ``params.json`` (its :class:`~autodropout.runs.trial.Trial` config) and ``result.json``
(one JSON line per report); a failed trial also has ``error.txt``. Reading the folders rather
than the driver's memory means export and the table survive a killed driver, and a trial that was
retried appears once.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodropout.atomic import atomic_write
from autodropout.errors import UserInputError
from autodropout.runs.trial import Trial

logger = logging.getLogger(__name__)


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
    """All trials of a Tune experiment folder, in creation (= sampling) order."""
    records = []
    for params_file in sorted(Path(experiment_dir).glob("*/params.json")):
        folder = params_file.parent
        try:
            trial = Trial.from_config(json.loads(params_file.read_text()))
        except (OSError, json.JSONDecodeError, UserInputError) as exc:
            logger.warning("skipping %s: unreadable trial config (%s)", folder.name, exc)
            continue
        last = _last_result(folder / "result.json")
        finished = bool(last) and (last.get("done") or last.get("epoch") == trial.task.train.epochs)
        # Ray appends to error.txt at every failure and never removes it: a trial that failed, was
        # retried (search.max_failures) and then completed (its last result says done) is done.
        errored = (folder / "error.txt").exists() and not (finished and last.get("done"))
        index, trial_id = _parse_folder(folder.name)
        records.append(TrialRecord(
            index=index,
            trial_id=last.get("trial_id") or trial_id,
            trial=trial,
            metric=_number(last.get(metric)),
            reward=None if errored else _number(last.get("reward")),
            status="error" if errored else ("done" if finished else "incomplete"),
            duration_s=float(last.get("time_total_s", 0.0)) if last else 0.0,
            epochs=int(last.get("epoch", 0)) if last else 0,
        ))
    return sorted(records, key=lambda r: r.index)


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
