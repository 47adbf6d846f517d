"""Does regularization pay on a preset? None vs the best rate-tuned hand-designed regularizer, over seeds.

For each method (none, and every ``NAME:key=value;...`` candidate given), every training seed trains
the preset once (``autodropout train`` with ``--seed``; the data split is fixed by ``task.split_seed``).
Per method family the rate with the best mean **validation** metric is chosen; the family with the
best validation mean is "the best tuned baseline". Printed: test mean ± standard error per method,
and the paired (same seed) test difference best - none with its standard error, the criterion of
docs/tasks.md (a preset is in the regime where regularization pays when the gain exceeds 2 SE).

    python benchmarks/preset_regime.py digits_wrn_quick --seeds 5 --jobs 2 \\
        --methods dropout:p=0.1 dropout:p=0.2 spatial_dropout:p=0.1 dropblock:p=0.1;block_size=3

``--set task.width=4`` overrides experiment fields (dotted paths) for exploring a preset's regime.
Each run uses one torch thread; ``--jobs`` runs that many at once.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autodropout.commands.transfer import parse_baseline
from autodropout.core.config import parse_assignments
from autodropout.runs.experiment import ExperimentConfig, experiment_from_dict, find_experiment


def with_overrides(experiment: ExperimentConfig, items: list[str]) -> ExperimentConfig:
    raw = json.loads(json.dumps(__import__("dataclasses").asdict(experiment)))
    for key, value in parse_assignments(items, "--set").items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return experiment_from_dict(raw)


def run_one(job: tuple[dict[str, Any], str, int]) -> dict[str, Any]:
    import torch

    from autodropout.tasks import Regularization, build_task

    torch.set_num_threads(1)
    raw, spec, seed = job
    experiment = experiment_from_dict(raw)
    _, name, params = parse_baseline(spec)
    task = build_task(experiment.task)
    regularization = Regularization.none() if name == "none" else Regularization(name=name, params=params)
    began = time.perf_counter()
    fit = task.fit(regularization, seed=seed, progress=False)
    test = task.evaluate(fit.model, "test")[task.metric]
    return {"method": spec, "family": name, "seed": seed, "val": fit.final.metric, "test": test,
            "train_loss": fit.final.train_loss,
            "seconds": time.perf_counter() - began, "mode": task.mode, "metric": task.metric}


def se(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def summarize(rows: list[dict[str, Any]]) -> str:
    mode, metric = rows[0]["mode"], rows[0]["metric"]
    sign = 1 if mode == "max" else -1
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {m: sorted((r for r in rows if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    val_mean = {m: statistics.fmean(r["val"] for r in by[m]) for m in methods}
    lines = [f"| method | val {metric} mean | test {metric} mean ± SE | test per seed | s/run |",
             "|---|---|---|---|---|"]
    for m in methods:
        tests = [r["test"] for r in by[m]]
        lines.append(f"| {m} | {val_mean[m]:.4f} | {statistics.fmean(tests):.4f} ± {se(tests):.4f} | "
                     f"{', '.join(f'{t:.4f}' for t in tests)} | {statistics.fmean(r['seconds'] for r in by[m]):.0f} |")
    families = {}
    for m in methods:
        family = by[m][0]["family"]
        if family != "none" and (family not in families or sign * val_mean[m] > sign * val_mean[families[family]]):
            families[family] = m
    lines.append("")
    lines.append("best rate per family (on validation): " + ", ".join(families.values()))
    if "none" in by and families:
        best = max(families.values(), key=lambda m: sign * val_mean[m])
        diffs = [sign * (b["test"] - n["test"]) for b, n in zip(by[best], by["none"])]
        gain, err = statistics.fmean(diffs), se(diffs)
        lines.append(f"best tuned baseline (validation): {best}; paired test gain over none "
                     f"({'higher' if mode == 'max' else 'lower'} is better): {gain:+.4f} ± {err:.4f} SE "
                     f"-> {'PAYS' if gain > 2 * err else 'does not pay'} (criterion: gain > 2 SE)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=["dropout:p=0.1", "dropout:p=0.2", "dropout:p=0.3"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write every run as JSON lines here")
    args = parser.parse_args(argv)
    experiment = with_overrides(find_experiment(args.preset), args.set)
    raw = json.loads(json.dumps(__import__("dataclasses").asdict(experiment)))
    seeds = [experiment.task.train.seed + i for i in range(args.seeds)]
    jobs = [(raw, spec, seed) for spec in ["none", *args.methods] for seed in seeds]
    began = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(run_one, jobs):
            rows.append(row)
            print(f"{row['method']} seed {row['seed']}: val {row['val']:.4f} test {row['test']:.4f} "
                  f"train loss {row['train_loss']:.4f} "
                  f"({row['seconds']:.0f}s)", file=sys.stderr, flush=True)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print(f"{args.preset} {' '.join(args.set)}: {len(seeds)} seeds, {len(rows)} runs in "
          f"{time.perf_counter() - began:.0f}s ({args.jobs} at a time, 1 thread each)\n")
    print(summarize(rows))


if __name__ == "__main__":
    main()
