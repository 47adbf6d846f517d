"""One line per finished trial on the driver's terminal (Tune's own table is switched off)."""
from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback


class ProgressPrinter(Callback):
    def __init__(self, total: int, metric: str) -> None:
        self.total = total
        self.metric = metric
        self.done = 0
        self.best = -math.inf
        self.started = time.perf_counter()


    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        reward = result.get("reward")
        if isinstance(reward, (int, float)) and math.isfinite(reward):
            self.best = max(self.best, reward)
        self._line(trial, f"reward {reward:.4f}  {self.metric} {result.get(self.metric, float('nan')):.4f}"
                   if isinstance(reward, (int, float)) else "no result")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "FAILED (see its error.txt)")

    def _line(self, trial: Any, text: str) -> None:
        self.done += 1
        best = f"best {self.best:.4f}" if math.isfinite(self.best) else "best -"
        elapsed = time.perf_counter() - self.started
        print(f"[{self.done:>3}/{self.total}] trial {trial.trial_id}: {text}  | {best} | {elapsed:.0f}s",
              file=sys.stdout, flush=True)
