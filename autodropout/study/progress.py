"""Progress of a study: one line per finished trial and per finished unit, with elapsed time and ETA,
and the wall-clock time spent in each unit (``walls.json``, kept across interruptions).

A background thread reads the running unit's Tune trial folders every ``interval`` seconds
(``params.json``, the last line of ``result.json``, ``error.txt``: the files
:func:`autodropout.runs.read_trials` reads for export), so it needs no hook in the search or in Ray:
it works the same for searches, tuned baselines and evaluation grids, and after a resume it counts
the trials finished before the interruption. The ETA assumes the remaining trials take as
long as those finished in this session (wall clock per trial, all workers together).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from autodropout.core.atomic import atomic_write
from autodropout.runs import ENDED, trial_id_of, trial_outcome, trial_statuses
from autodropout.study.plan import Unit


def duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StudyProgress:
    """Counts trials over the whole study; :meth:`watch` follows one unit while it runs."""

    def __init__(self, total: int, walls_file: Path, interval: float = 2.0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.walls_file = walls_file
        self.walls: dict[str, float] = json.loads(walls_file.read_text()) if walls_file.is_file() else {}
        self.interval = interval
        self.stream = stream or sys.stdout
        self.began = time.perf_counter()
        self.session_done = 0

    def skip(self, trials: int) -> None:
        """Count the trials of a unit that had already finished."""
        self.done += trials

    def watch(self, unit: Unit, experiment_dir: Path, metric: str, epochs: int) -> _Watch:
        """Follow ``unit``, whose trials appear in ``experiment_dir`` and train ``epochs`` epochs each."""
        return _Watch(self, unit, experiment_dir, metric, epochs)

    def line(self, text: str) -> None:
        elapsed = time.perf_counter() - self.began
        eta = "-"
        if self.session_done:
            eta = duration(elapsed / self.session_done * max(self.total - self.done, 0))
        print(f"[{self.done:>4}/{self.total}] {text} | {duration(elapsed)} elapsed, ETA {eta}", file=self.stream,
              flush=True)

    def add_wall(self, unit: Unit, seconds: float) -> float:
        self.walls[unit.id] = self.walls.get(unit.id, 0.0) + seconds
        atomic_write(self.walls_file, json.dumps(self.walls, indent=1, sort_keys=True) + "\n")
        return self.walls[unit.id]


class _Watch:
    """Context manager following one unit's trial folders in a thread."""

    def __init__(self, progress: StudyProgress, unit: Unit, experiment_dir: Path, metric: str, epochs: int) -> None:
        self.progress, self.unit, self.dir, self.metric, self.epochs = progress, unit, experiment_dir, metric, epochs
        self.seen: set[str] = set()
        self.first = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"progress {unit.id}", daemon=True)
        self.tick = time.perf_counter()

    def __enter__(self) -> _Watch:
        self._poll()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._poll()
        self._wall()

    def _run(self) -> None:
        while not self.stop.wait(self.progress.interval):
            try:
                self._poll()
                self._wall()
            except OSError as exc:  # progress must never stop the study; the next poll tries again
                print(f"(progress: {exc})", file=self.progress.stream, flush=True)

    def _wall(self) -> None:
        now = time.perf_counter()
        self.progress.add_wall(self.unit, now - self.tick)
        self.tick = now

    def _poll(self) -> None:
        ended = [t for t in ended_trials(self.dir, self.epochs) if t[0] not in self.seen]
        if self.first and ended:  # finished before this session (a resumed unit): counted, not printed
            self.progress.done += len(ended)
            self.seen.update(t[0] for t in ended)
            self.progress.line(f"{self.unit.id}: {len(ended)} of {self.unit.trials} trials already done")
            ended = []
        self.first = False
        for name, params, last, error in ended:
            self.seen.add(name)
            self.progress.done += 1
            self.progress.session_done += 1
            reward, value = last.get("reward"), last.get(self.metric)
            result = "FAILED" if error or not isinstance(reward, (int, float)) else f"reward {reward:.4f}" + (
                f" ({self.metric} {value:.4g})" if isinstance(value, (int, float)) else "")
            self.progress.line(f"{self.unit.id} trial {len(self.seen)}/{self.unit.trials} {_label(params)} "
                               f"seed {params.get('seed')}: {result}")


def ended_trials(folder: Path, epochs: int) -> list[tuple[str, dict, dict, bool]]:
    """``(folder name, params, last result, errored)`` of each trial of a Tune experiment folder that
    has finished (its last epoch reported), was stopped by a scheduler (Tune's state says TERMINATED)
    or failed (Tune's state
    says ERROR, or ``error.txt`` for a trial the state does not list yet: a trial Ray retried and
    that then finished keeps its ``error.txt``), in folder order."""
    out = []
    statuses = trial_statuses(folder) if folder.is_dir() else {}
    for params_file in sorted(folder.glob("*/params.json")) if folder.is_dir() else []:
        trial = params_file.parent
        try:
            params = json.loads(params_file.read_text())
            lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
            last = json.loads(lines[-1]) if lines and lines[-1].endswith("}") else {}
        except (OSError, json.JSONDecodeError):
            continue  # being written: read again at the next poll
        status = trial_outcome(trial, last, epochs, statuses.get(trial_id_of(trial.name)))
        if status in ENDED:
            out.append((trial.name, params, last, status == "error"))
    return out


def _label(params: dict) -> str:
    regularizer = params.get("regularizer") or {}
    if regularizer:
        values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in (regularizer.get("params") or {}).items())
        return f"{regularizer.get('name')}({values})"
    return str(params.get("label") or "pattern")
