"""The noise floor of a preset's reward: does the choice of pattern move it more than the training seed?

One fixed pattern (the space's first sample) is trained with ``--seeds`` training seeds; ``--patterns``
random patterns of the search space are trained with the search's seed. The validation reward (what
the controller sees) of each run is collected and printed with

    ratio = sd(reward over random patterns, one seed) / sd(reward over seeds, one pattern)

A ratio near 1 means a search on this preset ranks patterns by seed noise; the larger it is, the more
a single trial per pattern says about the pattern. Each run uses one torch thread; ``--jobs`` at once.

    python benchmarks/noise_floor.py digits_wrn_quick --seeds 5 --patterns 20 --jobs 2

The runs are drawn from a fixed seed, so a pass cut short continues with ``--resume``: the runs
already saved in ``--json`` (same preset, pattern and seed) are read back instead of trained again.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autodropout.runs.experiment import find_experiment


def run_one(job: tuple[str, list[int], int]) -> dict[str, Any]:
    import torch

    from autodropout.tasks import Regularization, build_task

    torch.set_num_threads(1)
    preset, tokens, seed = job
    experiment = find_experiment(preset)
    task = build_task(experiment.task)
    pattern = task.search_space(experiment.search.values).decode(tokens)
    began = time.perf_counter()
    fit = task.fit(Regularization(pattern=pattern), seed=seed, progress=False)
    return {"tokens": tokens, "seed": seed, "reward": fit.final.reward, "metric": fit.final.metric,
            "seconds": time.perf_counter() - began}


def _key(preset: str, tokens: list[int], seed: int) -> tuple[str, tuple[int, ...], int]:
    return preset, tuple(tokens), seed


def _saved_runs(path: Path) -> dict[tuple[str, tuple[int, ...], int], dict[str, Any]]:
    """The runs of an earlier pass, by (preset, pattern tokens, seed)."""
    runs = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        runs[_key(row.pop("preset"), row["tokens"], row["seed"])] = row
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--patterns", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every run as JSON lines here")
    parser.add_argument("--resume", action="store_true", help="reuse the runs already saved in --json")
    args = parser.parse_args(argv)
    if args.resume and not (args.json and args.json.is_file()):
        parser.error("--resume: needs --json naming the JSON-lines file of the pass to continue")
    saved = _saved_runs(args.json) if args.resume else {}
    lines = ["| preset | sd within (1 pattern, seeds) | sd between (patterns, 1 seed) | ratio | mean reward "
             "(fixed / random) | s/run |", "|---|---|---|---|---|---|"]
    for preset in args.presets:
        experiment = find_experiment(preset)
        from autodropout.tasks import build_task

        space = build_task(experiment.task).search_space(experiment.search.values)
        rng = random.Random(0)
        fixed = space.sample(rng)
        seed = experiment.task.train.seed
        jobs = [(preset, fixed, seed + i) for i in range(args.seeds)]
        jobs += [(preset, space.sample(rng), seed) for _ in range(args.patterns)]
        began = time.perf_counter()
        done = {_key(*job): saved[_key(*job)] for job in jobs if _key(*job) in saved}
        todo = [job for job in jobs if _key(*job) not in done]
        print(f"{preset}: {len(done)} runs read back from {args.json}, {len(todo)} to train", file=sys.stderr)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for job, row in zip(todo, pool.map(run_one, todo)):  # saved as they come: a pass may be cut short
                done[_key(*job)] = row
                print(f"{preset} seed {row['seed']} tokens {row['tokens'][:8]}...: reward {row['reward']:.4f} "
                      f"({row['seconds']:.0f}s)", file=sys.stderr, flush=True)
                if args.json:
                    with args.json.open("a") as fh:
                        fh.write(json.dumps({"preset": preset, **row}) + "\n")
        rows = [done[_key(*job)] for job in jobs]
        within = [r["reward"] for r in rows[:args.seeds]]
        between = [r["reward"] for r in rows[args.seeds:]]
        sd_w, sd_b = statistics.stdev(within), statistics.stdev(between)
        lines.append(f"| {preset} | {sd_w:.4f} | {sd_b:.4f} | {sd_b / sd_w:.1f} | {statistics.fmean(within):.4f} / "
                     f"{statistics.fmean(between):.4f} | {statistics.fmean(r['seconds'] for r in rows):.0f} |")
        print(f"{preset}: {len(rows)} runs in {time.perf_counter() - began:.0f}s", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
