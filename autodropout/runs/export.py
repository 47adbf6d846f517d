"""``autodropout export``: a run folder (finished or interrupted) -> trials table + best patterns.

Reads only files (the :class:`~autodropout.runs.run_dir.RunDir` record and the Tune trial folders),
never Ray, so it works on a copy of a run and after the driver was killed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autodropout.core.errors import UserInputError
from autodropout.runs.reevaluation import load_reevaluation, ranked
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
    default, or ``output``), the re-evaluated ones first by their mean reward over training seeds
    (:mod:`autodropout.runs.reevaluation`). Trials that failed, were stopped or did not finish are in
    the table, never exported.
    The pattern file records the shape each site of the run's model sees (``source.site_shapes``,
    from the recorded experiment config: no data is loaded), so pictures draw each site at its size."""
    if top < 1:
        raise ExportError(f"--top must be >= 1, got {top}")
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    records = read_trials(run.experiment_dir, run.metric)
    table = write_trials_csv(run.trials_table, records, run.metric)
    best_first = ranked(records, load_reevaluation(run.reevaluation_file), top)
    if not best_first:
        return Exported(records, None, table)
    patterns = [RankedPattern(rank, r.trial.regularization.pattern, reward, r.trial_id, seed_rewards)
                for rank, (r, reward, seed_rewards) in enumerate(best_first, start=1)]
    best, best_reward, _ = best_first[0]
    sites = task_sites(run.experiment.task)
    # ``value`` stays the best trial's own validation metric; ``reward`` is the one it is ranked by.
    source = {"experiment": run.experiment.name, "trial_id": best.trial_id, "metric": run.metric,
              "value": best.metric, "reward": best_reward,
              "site_shapes": sites.shapes if sites and len(sites.shapes) == run.space.num_sites else None}
    target = Path(output) if output else run.best_patterns
    return Exported(records, save_patterns(target, patterns, run.space, source=source), table)
