"""Does a trial's early reward predict its final one? The measurement behind ``search.scheduler``.

    PYTHONPATH=. python benchmarks/fidelity_correlation.py RUN_DIR [RUN_DIR ...] \
        [--short RUN_DIR ...] [--eta 3] [--boot 2000] [--seed 0]

A multi-fidelity scheduler (ASHA, HyperBand) stops a trial at an early rung when its reward there ranks
low, so it pays only if the early ranking is the final one. Regularization pays late (a pattern that
drops more learns slower at first), so this is measured before ``search.scheduler: asha`` is offered as
anything but an option (issue 21; docs/search.md, "Under a trial scheduler").

RUN_DIR: search run folders of random search (``autodropout search PRESET --controller random``, or a
study's ``arms/random-sN``): uniform random patterns of the space, trained on the preset's full
schedule, validated every ``eval_every`` epochs. For each evaluation epoch e, over the patterns:

* Spearman's rank correlation between the reward at e and the final reward, with a 90% percentile
  bootstrap interval (patterns resampled with replacement, ``--boot`` times);
* ``keeps best``: the share of bootstrap resamples in which the pattern with the best final reward is
  in the top 1/eta at epoch e (what one ASHA rung with reduction factor eta would keep);
* ``regret``: the mean final reward of the best 1/eta at epoch e, below that of the final best 1/eta.

``--short``: run folders of the same preset with a shorter schedule of its own (``--epochs E``, so the
learning-rate schedule and the last evaluation fit E epochs) and the same patterns (the same random
seeds, matched by tokens): the same numbers for its final reward against the full-schedule final.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from autodropout.runs import Trial

Curves = dict[tuple[int, ...], dict[int, float]]


def read_curves(run_dirs: list[Path]) -> Curves:
    """tokens -> {epoch: reward} of every trial of the run folders that reached its last epoch.

    A pattern that appears twice (two runs drew it) keeps its first trial: the patterns are the sample."""
    curves: Curves = {}
    for run_dir in run_dirs:
        for trial in sorted((run_dir / "trials").glob("trial_*")):
            if not (trial / "result.json").is_file():
                continue
            tokens = tuple(Trial.from_config(json.loads((trial / "params.json").read_text())).tokens)
            lines = [json.loads(x) for x in (trial / "result.json").read_text().splitlines() if x.strip()]
            curve = {int(r["epoch"]): float(r["reward"]) for r in lines if "epoch" in r and "reward" in r}
            if curve and tokens not in curves:
                curves[tokens] = curve
    if not curves:
        raise SystemExit(f"no finished trials in {', '.join(map(str, run_dirs))}")
    # Only trials that ran the whole schedule: the longest one seen.
    last = max(max(c) for c in curves.values())
    return {t: c for t, c in curves.items() if max(c) == last}


def ranks_kept(early: np.ndarray, final: np.ndarray, eta: int) -> tuple[bool, float]:
    """Whether the final best is in the top 1/eta by ``early``, and the final-reward shortfall of that
    top against the final top of the same size (rewards: higher is better)."""
    k = max(1, len(final) // eta)
    kept = np.argsort(-early)[:k]
    best = np.argsort(-final)[:k]
    return bool(np.argmax(final) in kept), float(final[best].mean() - final[kept].mean())


def summary(early: np.ndarray, final: np.ndarray, eta: int, boot: int, rng: np.random.Generator) -> str:
    rho = spearmanr(early, final).statistic
    rhos, keeps, regrets = [], [], []
    for _ in range(boot):
        i = rng.integers(0, len(final), len(final))
        if np.ptp(early[i]) > 0 and np.ptp(final[i]) > 0:
            rhos.append(spearmanr(early[i], final[i]).statistic)
        kept, regret = ranks_kept(early[i], final[i], eta)
        keeps.append(kept)
        regrets.append(regret)
    low, high = np.percentile(rhos, [5, 95])
    return (f"{rho:+.2f} [{low:+.2f}, {high:+.2f}]   keeps best {np.mean(keeps):4.0%}   "
            f"regret {np.mean(regrets):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="random-search run folders, full schedule")
    parser.add_argument("--short", nargs="*", type=Path, default=[], help="the same patterns, shorter schedule")
    parser.add_argument("--eta", type=int, default=3, help="reduction factor of the rung (default 3)")
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    curves = read_curves(args.runs)
    tokens = sorted(curves)
    epochs = sorted(set.intersection(*(set(c) for c in curves.values())))
    final = np.array([curves[t][epochs[-1]] for t in tokens])
    print(f"{len(tokens)} patterns, evaluation epochs {epochs}; Spearman with the final reward [90% bootstrap], "
          f"top 1/{args.eta} rung")
    for e in epochs[:-1]:
        early = np.array([curves[t][e] for t in tokens])
        print(f"  reward at epoch {e:3d} of {epochs[-1]}: {summary(early, final, args.eta, args.boot, rng)}")
    if args.short:
        short = read_curves(args.short)
        both = [t for t in tokens if t in short]
        if len(both) < 3:
            raise SystemExit(f"only {len(both)} patterns of --short are in the full runs: use the same seeds")
        s_last = max(max(c) for c in short.values())
        early = np.array([short[t][s_last] for t in both])
        full = np.array([curves[t][epochs[-1]] for t in both])
        print(f"  own schedule of {s_last} epochs ({len(both)} patterns): "
              f"{summary(early, full, args.eta, args.boot, rng)}")


if __name__ == "__main__":
    main()
