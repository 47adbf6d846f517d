"""``autodropout export``: a run folder (finished or interrupted) -> trials table + best patterns.

Reads only files (``run.json``, ``config.yaml`` and the Tune trial folders), never Ray, so it
works on a copy of a run and after the driver was killed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from autodropout.config import ConfigError, UserInputError, experiment_from_dict
from autodropout.search_spaces import RankedPattern, save_patterns, space_from_config
from autodropout.workers.results import TrialRecord, read_trials, write_trials_csv


class ExportError(UserInputError, ValueError):
    """The run folder cannot be exported; the message says why."""


@dataclass
class Exported:
    records: list[TrialRecord]
    patterns_file: Path | None
    table_file: Path


def export_run(run_dir: str | Path, top: int = 5, output: str | Path | None = None) -> Exported:
    """Write ``trials.csv`` and the ``top`` best completed patterns (``best_patterns.json`` by
    default, or ``output``). Trials that failed or did not finish are in the table, never exported."""
    run_dir = Path(run_dir)
    if top < 1:
        raise ExportError(f"--top must be >= 1, got {top}")
    try:
        info = json.loads((run_dir / "run.json").read_text())
        experiment = experiment_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    except FileNotFoundError as exc:
        raise ExportError(f"{run_dir}: not a search run folder (missing {Path(exc.filename).name})") from None
    except (json.JSONDecodeError, yaml.YAMLError, ConfigError) as exc:
        raise ExportError(f"{run_dir}: damaged run folder: {exc}") from None
    metric = info["metric"]
    records = read_trials(Path(info["experiment_dir"]), metric)
    table = write_trials_csv(run_dir / "trials.csv", records, metric)
    done = sorted((r for r in records if r.status == "done" and r.reward is not None),
                  key=lambda r: r.reward, reverse=True)[:top]
    if not done:
        return Exported(records, None, table)
    space = space_from_config(info["space"], {"num_sites": len(done[0].pattern),
                                               "values": experiment.search.values})
    ranked = [
        RankedPattern(rank, space.decode(r.tokens), r.reward, r.trial_id)
        for rank, r in enumerate(done, start=1)
    ]
    best = done[0]
    source = {"experiment": experiment.name, "trial_id": best.trial_id, "metric": metric,
              "value": best.metric, "reward": best.reward}
    target = Path(output) if output else run_dir / "best_patterns.json"
    return Exported(records, save_patterns(target, ranked, space, source=source), table)
