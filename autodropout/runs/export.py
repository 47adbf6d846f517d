"""``autodropout export``: a run folder (finished or interrupted) -> trials table + best patterns.

Reads only files (the :class:`~autodropout.runs.run_dir.RunDir` record and the Tune trial folders),
never Ray, so it works on a copy of a run and after the driver was killed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autodropout.errors import UserInputError
from autodropout.runs.results import TrialRecord, read_trials, write_trials_csv
from autodropout.runs.run_dir import RunDir
from autodropout.search_spaces import RankedPattern, save_patterns
from autodropout.tasks import task_sites


class ExportError(UserInputError, ValueError):
    """The run folder cannot be exported; the message says why."""


@dataclass
class Exported:
    records: list[TrialRecord]
    patterns_file: Path | None
    table_file: Path


def export_run(run: RunDir | str | Path, top: int = 5, output: str | Path | None = None) -> Exported:
    """Write ``trials.csv`` and the ``top`` best completed patterns (``best_patterns.json`` by
    default, or ``output``). Trials that failed or did not finish are in the table, never exported.
    The pattern file records the shape each site of the run's model sees (``source.site_shapes``,
    from the recorded experiment config: no data is loaded), so pictures draw each site at its size."""
    if top < 1:
        raise ExportError(f"--top must be >= 1, got {top}")
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    records = read_trials(run.experiment_dir, run.metric)
    table = write_trials_csv(run.trials_table, records, run.metric)
    done = sorted((r for r in records if r.status == "done" and r.reward is not None),
                  key=lambda r: r.reward, reverse=True)[:top]
    if not done:
        return Exported(records, None, table)
    ranked = [RankedPattern(rank, r.trial.regularization.pattern, r.reward, r.trial_id)
              for rank, r in enumerate(done, start=1)]
    best = done[0]
    sites = task_sites(run.experiment.task)
    source = {"experiment": run.experiment.name, "trial_id": best.trial_id, "metric": run.metric,
              "value": best.metric, "reward": best.reward,
              "site_shapes": sites.shapes if sites and len(sites.shapes) == run.space.num_sites else None}
    target = Path(output) if output else run.best_patterns
    return Exported(records, save_patterns(target, ranked, run.space, source=source), table)
