"""Reference numbers of the embedded quick presets: test metric with no dropout and with plain
dropout, mean and spread over seeds, and training time per epoch on this machine.

    python benchmarks/task_reference.py [--seeds 3] [--presets digits_wrn_quick ...] [--threads 1]

Each run is exactly `autodropout train PRESET [--regularizer dropout --param p=0.1] --seed S`.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from autodropout.experiment import find_experiment
from autodropout.training import train_once

PRESETS = ["digits_wrn_quick", "lm_transformer_quick", "translation_numbers_quick"]
METHODS = [("none", None, {}), ("dropout p=0.1", "dropout", {"p": 0.1})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one trial's share)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for preset in args.presets:
        base = find_experiment(preset)
        for label, name, params in METHODS:
            tests, vals, epoch_times = [], [], []
            for seed in range(args.seeds):
                train = dataclasses.replace(base.task.train, seed=seed)
                experiment = dataclasses.replace(base, task=dataclasses.replace(base.task, train=train))
                report = train_once(experiment, regularizer=name, params=params, progress=False)
                tests.append(report.test[report.metric])
                vals.append(report.val[report.metric])
                epoch_times.append(report.seconds_per_epoch)
                print(f"{preset} {label} seed {seed}: val {vals[-1]:.4f} test {tests[-1]:.4f} "
                      f"({epoch_times[-1]:.1f} s/epoch)", flush=True)
            rows.append((preset, report.metric, label, tests, vals, statistics.mean(epoch_times)))
    print(f"\n| preset | metric | regularization | test mean ± std ({args.seeds} seeds) | test per seed | "
          "validation mean | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    for preset, metric, label, tests, vals, sec in rows:
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        print(f"| {preset} | {metric} | {label} | {statistics.mean(tests):.4f} ± {spread:.4f} | "
              f"{', '.join(f'{t:.4f}' for t in tests)} | {statistics.mean(vals):.4f} | {sec:.1f} |")


if __name__ == "__main__":
    main()
