"""What a search says when it ends: finished, interrupted, or found already complete (no Ray)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autodropout.runs.export import Exported
from autodropout.runs.reevaluation import load_reevaluation, ranked
from autodropout.runs.results import ENDED
from autodropout.runs.run_dir import RunDir

Status = Literal["finished", "interrupted", "complete"]


@dataclass
class SearchSummary:
    """The end of a search: ``status`` is ``finished`` (this run ended every trial), ``interrupted``
    (stopped with trials left: resume it) or ``complete`` (``--resume`` of a run that had already
    ended every trial: nothing was run)."""

    run_dir: Path
    status: Status
    requested: int
    trials: int
    ended: int
    failed: int
    stopped: int
    #: Epochs the trials trained, and what running every trial to the end would have (they differ
    #: under a trial scheduler, whose cost is then said in epochs as well as seconds).
    epochs: int
    full_epochs: int
    best_reward: float | None
    #: Training seeds the best reward is the mean of (1 unless ``search.reevaluate`` ran).
    best_seeds: int
    best_metric: float | None
    best_index: int | None
    metric: str
    first_mean: float | None
    last_mean: float | None
    wall_seconds: float | None
    best_patterns: Path | None
    trials_table: Path
    progress_plot: Path | None
    size_bytes: int
    keep_checkpoints: str
    checkpoints_kept: int

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"

    @classmethod
    def of(cls, run: RunDir, exported: Exported, status: Status, wall_seconds: float | None = None,
           progress_plot: Path | None = None, checkpoints_kept: int = 0) -> SearchSummary:
        records = exported.records
        valid = [r for r in records if r.reward is not None and r.status == "done"]
        third = max(1, len(valid) // 3)
        # The best is the exported rank 1: by the mean over training seeds if re-evaluated.
        first = ranked(records, load_reevaluation(run.reevaluation_file), 1)
        best, best_reward, seed_rewards = first[0] if first else (None, None, None)
        return cls(
            run_dir=run.path, status=status, requested=run.trials, trials=len(records),
            ended=sum(r.status in ENDED for r in records), failed=sum(r.status == "error" for r in records),
            stopped=sum(r.status == "stopped" for r in records),
            epochs=sum(r.epochs for r in records), full_epochs=len(records) * run.experiment.task.train.epochs,
            best_reward=best_reward, best_seeds=len(seed_rewards) if seed_rewards else 1,
            best_metric=best.metric if best else None,
            best_index=best.index if best else None, metric=run.metric,
            first_mean=_mean([r.reward for r in valid[:third]]), last_mean=_mean([r.reward for r in valid[-third:]]),
            wall_seconds=wall_seconds, best_patterns=exported.patterns_file, trials_table=exported.table_file,
            progress_plot=progress_plot, size_bytes=run.size(), keep_checkpoints=run.experiment.search.keep_checkpoints,
            checkpoints_kept=checkpoints_kept,
        )

    def _ended_note(self) -> str:
        stopped = (f", {self.stopped} stopped early by the scheduler; {self.epochs} of {self.full_epochs} epochs "
                   "trained") if self.stopped else ""
        return f"{self.failed} failed{stopped}"

    def headline(self) -> str:
        took = f" in {self.wall_seconds:.0f}s" if self.wall_seconds is not None else ""
        if self.status == "finished":
            return f"search finished: {self.trials} trials ({self._ended_note()}){took}"
        if self.status == "interrupted":
            return f"search interrupted: {self.ended} of {self.requested} trials ended ({self._ended_note()}){took}"
        return (f"search already complete: {self.ended} of {self.requested} trials ended ({self._ended_note()}); "
                f"nothing to resume\n  to extend it: autodropout search --resume {self._dir()} --trials N "
                f"(N > {self.requested})")

    def text(self) -> str:
        lines = [self.headline()]
        if self.best_reward is not None:
            if self.best_seeds > 1:
                lines.append(f"best reward {self.best_reward:.4f} (mean over {self.best_seeds} training seeds after "
                             f"re-evaluation; validation {self.metric} {self.best_metric:.4f} on the search's seed), "
                             f"trial {self.best_index}")
            else:
                lines.append(f"best reward {self.best_reward:.4f} (validation {self.metric} {self.best_metric:.4f}), "
                             f"trial {self.best_index}")
        if self.first_mean is not None and self.last_mean is not None:
            lines.append(f"mean reward moved from {self.first_mean:.4f} (first third of trials) "
                         f"to {self.last_mean:.4f} (last third)")
        lines.append(f"outputs: {self.run_dir}")
        if self.best_patterns:
            lines.append(f"  best patterns: {self.best_patterns}")
        lines.append(f"  trials table:  {self.trials_table}")
        if self.progress_plot:
            lines.append(f"  progress plot: {self.progress_plot}")
        lines.append(f"  TensorBoard:   tensorboard --logdir {self.run_dir}")
        lines.append(f"run folder size: {human_size(self.size_bytes)} ({self.checkpoints_kept} trial checkpoint"
                     f"{'s' * (self.checkpoints_kept != 1)} kept; search.keep_checkpoints: {self.keep_checkpoints})")
        return "\n".join(lines)

    def resume_hint(self) -> str:
        """The line an interrupted search ends with."""
        return (f"interrupted after {self.ended} of {self.requested} trials; "
                f"continue with: autodropout search --resume {self._dir()}")

    def _dir(self) -> str:
        return shlex.quote(str(self.run_dir))


def human_size(size: int) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
