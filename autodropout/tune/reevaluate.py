"""Top-k re-evaluation on Ray (``search.reevaluate``): a finished search's best patterns trained again
on more training seeds before it exports (the record and the ranking: :mod:`autodropout.runs.reevaluation`).

The cells run as a Tune grid (:func:`~autodropout.tune.parallel.run_grid`, the trainable and
resources of the search's own trials) kept in the run folder, so a stopped re-evaluation resumes from
its checkpoints with ``autodropout search --resume``. The grid's folder is named after the patterns
and seeds it trains: an extended search whose best patterns changed gets a grid of its own.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import sys

from autodropout.runs import RunDir, TrialRecord
from autodropout.runs.reevaluation import candidates, load_reevaluation, save_reevaluation
from autodropout.tasks import Task
from autodropout.tune.parallel import run_grid


def extra_seeds(run: RunDir) -> list[int]:
    """The training seeds of the re-evaluation: the search's seed + 1, + 2, ..."""
    return [run.seed + 1 + i for i in range(run.experiment.search.reevaluate.seeds)]


def pending(run: RunDir, records: list[TrialRecord]) -> bool:
    """Whether the run is to re-evaluate and its record does not hold its current best patterns."""
    top_k = run.experiment.search.reevaluate.top_k
    return top_k > 0 and ({r.trial_id for r in candidates(records, top_k)}
                          != set(load_reevaluation(run.reevaluation_file)))


def reevaluate(run: RunDir, task: Task, records: list[TrialRecord], quiet: bool) -> None:
    """Train the ``top_k`` best finished patterns of ``records`` on :func:`extra_seeds` and record
    each one's ``(seed, reward)`` list, its search trial first; a cell that fails is left out of its
    pattern's mean (and said so). ``KeyboardInterrupt`` if stopped: nothing is recorded then."""
    search = run.experiment.search
    best = candidates(records, search.reevaluate.top_k)
    seeds = extra_seeds(run)
    if not quiet:
        print(f"re-evaluating the {len(best)} best patterns on {len(seeds)} more training seeds "
              f"({len(best) * len(seeds)} trials)", flush=True)
    key = hashlib.sha1(" ".join([*(r.trial_id for r in best), *map(str, seeds)]).encode()).hexdigest()[:8]
    trials = [dataclasses.replace(r.trial, label=r.trial_id) for r in best]
    rewards = {r.trial_id: [(r.trial.seed, float(r.reward))] for r in best}
    for cell in run_grid(task, trials, seeds, search.cpus_per_trial, search.gpus_per_trial, progress=not quiet,
                         storage=run.reevaluation_dir / key):
        reward = cell.metrics.get("reward")
        if cell.error is None and isinstance(reward, (int, float)) and math.isfinite(reward):
            rewards[cell.method].append((cell.seed, float(reward)))
        else:
            print(f"re-evaluation of trial {cell.method} with seed {cell.seed} failed ({cell.error or 'no reward'}); "
                  "its mean leaves that seed out", file=sys.stderr, flush=True)
    save_reevaluation(run.reevaluation_file, rewards)
