"""Reading a Tune experiment folder back into a trials table (works on interrupted runs too).

Each trial folder holds ``params.json`` (its config: pattern, tokens, seed) and ``result.json``
(one JSON line per report); a failed trial also has ``error.txt``. Reading the folders rather
than the driver's memory means export and the table survive a killed driver, and a trial that was
retried appears once.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodropout.atomic import atomic_write


@dataclass
class TrialRecord:
    index: int
    trial_id: str
    tokens: list[int]
    pattern: list[dict[str, Any]]
    metric: float | None
    reward: float | None
    status: str
    duration_s: float
    epochs: int
    extra: dict[str, Any] = field(default_factory=dict)


def read_trials(experiment_dir: Path, metric: str) -> list[TrialRecord]:
    """All trials of a Tune experiment folder, in creation (= sampling) order."""
    records = []
    for params_file in sorted(Path(experiment_dir).glob("*/params.json")):
        folder = params_file.parent
        try:
            params = json.loads(params_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "tokens" not in params:
            continue
        last = _last_result(folder / "result.json")
        errored = (folder / "error.txt").exists()
        epochs_done = int(last.get("epoch", 0)) if last else 0
        status = "error" if errored else ("done" if last.get("done") or _finished(last, params) else "incomplete")
        index, trial_id = _parse_folder(folder.name)
        records.append(TrialRecord(
            index=index,
            trial_id=last.get("trial_id") or trial_id,
            tokens=list(params["tokens"]),
            pattern=params["pattern"],
            metric=_number(last.get(metric)),
            reward=None if errored else _number(last.get("reward")),
            status=status,
            duration_s=float(last.get("time_total_s", 0.0)) if last else 0.0,
            epochs=epochs_done,
        ))
    return sorted(records, key=lambda r: r.index)


def _finished(last: dict[str, Any], params: dict[str, Any]) -> bool:
    epochs = (params.get("task") or {}).get("train", {}).get("epochs")
    return bool(last) and epochs is not None and last.get("epoch") == epochs


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
        writer.writerow([r.index, r.trial_id, r.status, _fmt(r.metric), _fmt(r.reward), r.epochs, f"{r.duration_s:.2f}",
                         " ".join(map(str, r.tokens)), json.dumps(r.pattern, separators=(",", ":"))])
    return atomic_write(path, buffer.getvalue())


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(value)
