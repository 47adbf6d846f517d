"""One line per finished trial on the driver's terminal (Tune's own table is switched off)."""
from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial


class ProgressPrinter(Callback):
    def __init__(self, total: int, metric: str) -> None:
        self.total = total
        self.metric = metric
        self.done = 0
        self.best = -math.inf
        self.started = time.perf_counter()
        self.counted_restored = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # A resumed search counts on from the trials that had already ended.
        if not self.counted_restored:
            self.counted_restored = True
            ended = [t for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)]
            self.done = len(ended)
            for t in ended:
                if t.status == Trial.TERMINATED:
                    self._update_best((t.last_result or {}).get("reward"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        reward = result.get("reward")
        self._update_best(reward)
        self._line(trial, f"reward {reward:.4f}  {self.metric} {result.get(self.metric, float('nan')):.4f}"
                   if isinstance(reward, (int, float)) else "no result")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "FAILED (see its error.txt)")

    def _update_best(self, reward: Any) -> None:
        if isinstance(reward, (int, float)) and math.isfinite(reward):
            self.best = max(self.best, reward)

    def _line(self, trial: Any, text: str) -> None:
        self.done += 1
        best = f"best {self.best:.4f}" if math.isfinite(self.best) else "best -"
        elapsed = time.perf_counter() - self.started
        print(f"[{self.done:>3}/{self.total}] trial {trial.trial_id}: {text}  | {best} | {elapsed:.0f}s",
              file=sys.stdout, flush=True)
