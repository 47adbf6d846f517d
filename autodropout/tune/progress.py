"""Live progress of a search on the driver's terminal (Tune's own table is switched off).

* one line on stdout when a trial starts and when it ends, numbered like the trials table and the
  trial folders: ``[ 7/24]`` is the 7th pattern the controller sampled, whatever order trials end in;
* a tqdm bar over the trials on stderr (a terminal only), with elapsed time, ETA, the best reward and
  the running trials; each end-of-trial line repeats the elapsed time and ETA from the bar's clock,
  so a log file has them too;
* ``search_progress.png`` in the run folder (:func:`~autodropout.runs.plot.plot_search_progress`),
  redrawn in a background thread as trials end.

The callback is pickled into the Tuner's state and restored with it, so everything it holds at run
time is made at the first step of a run (:class:`_Display`) and left out of the pickle.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from tqdm.auto import tqdm

#: Redraw the picture at least this many seconds apart, and so that drawing takes at most this share of
#: one core (each draw is timed).
PLOT_MIN_INTERVAL_S = 10.0
PLOT_MAX_SHARE = 0.005


def trial_index(trial: Any) -> int:
    """The trial's creation index: Tune's search generator counts created trials (1, 2, ...) and
    puts the count first in the experiment tag; the searcher suggests in that same order."""
    return int(trial.experiment_tag.split("_", 1)[0])


def _reward(trial: Any) -> float | None:
    value = (trial.last_result or {}).get("reward")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


class SearchProgress(Callback):
    """Tune callback: the lines, the bar and the picture (see the module docstring)."""

    def __init__(self, total: int, metric: str, plot_file: Path | None = None, title: str = "search") -> None:
        self.total, self.metric, self.plot_file, self.title = total, metric, plot_file, title
        self._display: _Display | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_display": None}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._display is None:
            self._display = _Display(self, trials)
        self._display.tick()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._display is not None:
            self._display.started(trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._display is not None:
            self._display.ended(trial, _reward(trial), failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._display is not None:
            self._display.ended(trial, None, failed=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._display is not None:
            self._display.retrying(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._display is not None:
            self._display.close()
            self._display = None


class _Display:
    """What one run of the tuning loop shows; trials that ended before it (a resumed search) count."""

    def __init__(self, spec: SearchProgress, trials: list) -> None:
        self.spec = spec
        self.width = len(str(spec.total))
        self.points: dict[int, float | None] = {}
        for t in trials:
            if t.status == Trial.TERMINATED:
                self.points[trial_index(t)] = _reward(t)
            elif t.status == Trial.ERROR:
                self.points[trial_index(t)] = None
        self.running: set[str] = set()
        self.peak = 0  # most trials running at once: an ETA needs that many ended to mean anything
        self.seen: set[str] = set()
        # Trials that an earlier driver had started: a resumed search continues them from their checkpoints.
        self.resuming = {t.trial_id for t in trials if t.status not in (Trial.TERMINATED, Trial.ERROR)
                         and t.checkpoint is not None}
        rewards = [r for r in self.points.values() if r is not None]
        self.best = max(rewards, default=None)
        tty = sys.stderr.isatty()
        self.bar = tqdm(total=spec.total, initial=len(self.points), unit="trial", smoothing=0, dynamic_ncols=True,
                        file=sys.stderr if tty else open(os.devnull, "w"), desc="trials")
        self.to_terminal = tty
        self.plotter = _Plotter(spec.plot_file, spec.total, spec.title)
        self.last_tick = 0.0
        self._postfix()

    def started(self, trial: Any) -> None:
        verb = ("restarted" if trial.trial_id in self.seen
                else "resumed from its checkpoint" if trial.trial_id in self.resuming else "started")
        self.seen.add(trial.trial_id)
        self.running.add(trial.trial_id)
        self.peak = max(self.peak, len(self.running))
        self._postfix()
        self._line(trial, verb, f"{self._counts()} | {self._clock(eta=False)}")

    def ended(self, trial: Any, reward: float | None, failed: bool) -> None:
        self.running.discard(trial.trial_id)
        index = trial_index(trial)
        self.points[index] = reward
        if reward is not None:
            self.best = reward if self.best is None else max(self.best, reward)
        self.bar.update(1)
        self._postfix()
        if failed:
            text = f"FAILED (error.txt in {Path(trial.path).name})"
        elif reward is None:
            text = "no usable reward"
        else:
            value = (trial.last_result or {}).get(self.spec.metric)
            shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
            text = f"reward {reward:.4f}  {self.spec.metric} {shown}"
        best = f"best {self.best:.4f}" if self.best is not None else "best -"
        self._line(trial, text, f"{best} | {self._counts()} | {self._clock(eta=True)}")
        self.plotter.request(self.points)

    def retrying(self, trial: Any) -> None:
        self.running.discard(trial.trial_id)
        self._postfix()
        where = "from its last checkpoint" if trial.checkpoint is not None else "from the start"
        self._line(trial, f"failed; retrying {where}", f"{self._counts()} | {self._clock(eta=False)}")

    def tick(self) -> None:
        """Keep the bar's clock moving between events (about once a second)."""
        now = time.monotonic()
        if now - self.last_tick >= 1.0:
            self.last_tick = now
            self.bar.refresh()

    def close(self) -> None:
        self.plotter.wait()
        self.bar.close()
        if not self.to_terminal:
            self.bar.fp.close()

    def _counts(self) -> str:
        return f"{len(self.points)} ended, {len(self.running)} running"

    def _clock(self, eta: bool) -> str:
        d = self.bar.format_dict
        text = tqdm.format_interval(d["elapsed"])
        if not eta:
            return text
        done = d["n"] - d["initial"]
        if done < max(1, self.peak) or not d["elapsed"]:
            return f"{text}, ETA -"
        return f"{text}, ETA {tqdm.format_interval((d['total'] - d['n']) * d['elapsed'] / done)}"

    def _postfix(self) -> None:
        best = f"best {self.best:.4f}, " if self.best is not None else ""
        self.bar.set_postfix_str(f"{best}{len(self.running)} running", refresh=True)

    def _line(self, trial: Any, text: str, tail: str) -> None:
        head = f"[{trial_index(trial):>{self.width}}/{self.spec.total}] {trial.trial_id}"
        line = f"{head} {text:<42} | {tail}"
        if self.to_terminal:
            self.bar.write(line, file=sys.stdout)
            sys.stdout.flush()
        else:
            print(line, flush=True)


class _Plotter:
    """Redraws the picture in a background thread: at most one draw at a time, at least
    ``PLOT_MIN_INTERVAL_S`` apart, and spaced so that drawing takes at most ``PLOT_MAX_SHARE`` of
    the time (a draw costs ~0.2-0.6 s on a busy 2-core machine; the first also imports matplotlib)."""

    def __init__(self, path: Path | None, total: int, title: str) -> None:
        self.path, self.total, self.title = path, total, title
        self.thread: threading.Thread | None = None
        self.next_at = 0.0
        self.pending: dict[int, float | None] | None = None

    def request(self, points: dict[int, float | None]) -> None:
        if self.path is None:
            return
        self.pending = dict(points)
        busy = self.thread is not None and self.thread.is_alive()
        if busy or time.monotonic() < self.next_at:
            return
        snapshot, self.pending = self.pending, None
        self.thread = threading.Thread(target=self._draw, args=(snapshot,), name="search-progress-plot", daemon=True)
        self.thread.start()

    def _draw(self, points: dict[int, float | None]) -> None:
        from autodropout.runs.plot import plot_search_progress  # matplotlib: imported off the driver's loop

        began = time.monotonic()
        try:
            plot_search_progress(self.path, sorted(points.items()), self.total, self.title)
        except Exception:  # a picture must never stop a search
            self.path = None
            return
        spent = time.monotonic() - began
        self.next_at = time.monotonic() + max(PLOT_MIN_INTERVAL_S, spent / PLOT_MAX_SHARE)

    def wait(self) -> None:
        """Let a draw in progress finish, so that it cannot overwrite the final picture."""
        if self.thread is not None:
            self.thread.join(timeout=120)
