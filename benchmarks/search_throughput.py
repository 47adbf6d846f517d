"""Search throughput: trials per hour, worker utilisation and controller cost per trial.

    python benchmarks/search_throughput.py [--experiment digits_wrn_quick] [--trials 8] [--concurrency 1 2]

For each concurrency K it runs a real search of the experiment (a fresh run folder in a temp dir)
and reports, from the same run:

* trials/hour      = trials / fit wall time * 3600 (Ray start-up and data loading excluded);
* utilisation      = sum of trial training time (Tune's ``time_total_s``) / (wall time * K):
                     how much of the available worker time went into training;
* controller cost  = driver time inside the searcher's ``suggest`` and ``on_trial_complete``
                     (sampling, REINFORCE updates, TensorBoard logging, checkpoint) per trial,
                     and as a share of the mean trial time.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from autodropout.controller.searcher import BaseSearcher
from autodropout.runs.experiment import find_experiment
from autodropout.tune.search import run_search

CONTROLLER_SECONDS = [0.0]


def _timed(method):
    def wrapper(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            CONTROLLER_SECONDS[0] += time.perf_counter() - began

    return wrapper


BaseSearcher.suggest = _timed(BaseSearcher.suggest)
BaseSearcher.on_trial_complete = _timed(BaseSearcher.on_trial_complete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="digits_wrn_quick")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, help="override task.train.epochs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    rows = []
    for concurrency in args.concurrency:
        experiment = find_experiment(args.experiment)
        search = dataclasses.replace(experiment.search, trials=args.trials, concurrency=concurrency)
        task = experiment.task
        if args.epochs:
            task = dataclasses.replace(task, train=dataclasses.replace(task.train, epochs=args.epochs))
        experiment = dataclasses.replace(experiment, search=search, task=task)
        CONTROLLER_SECONDS[0] = 0.0
        with tempfile.TemporaryDirectory() as folder:
            summary = run_search(experiment, output=Path(folder) / "run", quiet=True)
            import csv

            with open(Path(folder) / "run" / "trials.csv") as fh:
                durations = [float(r["duration_s"]) for r in csv.DictReader(fh)]
        wall = summary.wall_seconds
        trial_time = sum(durations)
        mean_trial = trial_time / len(durations)
        per_trial = CONTROLLER_SECONDS[0] / len(durations)
        rows.append((concurrency, len(durations), wall, len(durations) / wall * 3600,
                     trial_time / (wall * concurrency), mean_trial, per_trial, per_trial / mean_trial))
        print(f"concurrency {concurrency}: done", flush=True)

    print(f"\n{args.experiment}, {args.trials} trials per row\n")
    print("| concurrency | trials | wall (s) | trials/hour | utilisation | mean trial (s) | controller/trial (ms) "
          "| controller share |")
    print("|---|---|---|---|---|---|---|---|")
    for c, n, wall, tph, util, mean_trial, per_trial, share in rows:
        print(f"| {c} | {n} | {wall:.1f} | {tph:.0f} | {util:.1%} | {mean_trial:.1f} | {per_trial * 1000:.1f} "
              f"| {share:.2%} |")


if __name__ == "__main__":
    main()
