"""The LSTM controller and regularized evolution vs random search on a synthetic target-matching
reward (no training).

    PYTHONPATH=. python benchmarks/controller_synthetic.py [--seeds 10] [--space conv transformer]
        [--reference main] [--jobs 1] [--evolution P/S ...] [--no-lstm] [--sweep | --warm-start START ...]

The searchers are driven directly through the Ray Tune ``Searcher`` API (``suggest`` /
``on_trial_complete``), as Ray Tune's own searcher tests do, with ``--concurrency`` live trials that
complete in random order, so the asynchronous lag between sampling and update is real.

Reward: each seed hides a target token sequence; ``match`` = fraction of the target's *free* decisions
(those its ``choice_mask`` left open) that a pattern gets right. A decision the target's earlier ones
forced (a conv tile's null rate, the geometry of an element/channel/sample unit, what an embedding
unit does not read) is left out: any pattern with the same earlier choices matches it for free, which
inflated random search's match on the version-3 conv space (0.76 at 24 samples).

* clean     reward = match
* noisy     reward = match + N(0, 0.05)
* squeezed  reward = 0.97 + 0.02 * match        (the band real validation accuracies occupy)
* noise     reward = N(0.5, 0.05), whatever the pattern (no signal at all)

Reported over seeds (mean ± standard error), all in units of ``match`` (the quality of the patterns,
whatever the reward variant showed the searcher): *best* = the best match among the patterns sampled
so far, *last 20%* = the mean match of the last fifth of them, at each budget; the paired difference
searcher - random (same seed, same target) with its standard error, for the LSTM controller (*new*)
and each ``--evolution P/S`` arm (regularized evolution, population P, tournament S; any registered
searcher can be driven the same way, :func:`make_searcher`); and the policy's entropy (share of the
untrained policy's) after ``--noise-samples`` noise-only rewards. ``--no-lstm`` leaves the LSTM out
(the other searchers take seconds, so many seeds are cheap).

``--reference REV`` also runs the controller of git revision REV (default ``main``; ``none`` to skip)
in a child process on the package extracted with ``git archive``, for the before/after comparison.
``--sweep`` measures the candidate update rules that chose the defaults (docs/search.md).
``--warm-start d=3 d=8 far`` measures searches that start from a known point at those distances from the
target instead (benchmarks/warm_start_candidates.py; docs/search.md, "Starting from a known point").
Run it from the repository root with ``PYTHONPATH=.`` so the checkout's package is the one measured.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

VARIANTS = ("clean", "noisy", "squeezed")
NOISE_SD = 0.05


def make_space(name: str) -> Any:
    from autodropout.search_spaces import ConvSpace, TransformerSpace

    return {"conv": lambda: ConvSpace(num_sites=3), "transformer": lambda: TransformerSpace(num_sites=2)}[name]()


def make_searcher(kind: str, space: Any, seed: int, settings: dict[str, Any] | None,
                  start: dict[str, Any] | None = None) -> Any:
    """``start``: ``{"tokens": [...], "warm": "prior" | "fit" | "mutate"}`` (warm-start mode only, so that
    the reference revision, which has no start points, is never given one)."""
    from autodropout.controller import searcher as module

    options: dict[str, Any] = {"metric": "reward", "mode": "max", "seed": seed}
    if start is not None:
        options["start_tokens"] = start["tokens"]
    if kind == "random":
        return module.RandomSearcher(space, **options)
    if kind not in ("controller", "random"):  # any other registered searcher, by name
        from autodropout.controller import searchers

        return searchers.build(kind, space, searchers.parse_settings(kind, settings or {}, kind), **options)
    if start is not None and start["warm"] == "fit":
        from warm_start_candidates import FitSearcher

        return FitSearcher(space, **options)
    if not settings:  # the defaults of whichever version is imported (also the reference revision's)
        return module.ControllerSearcher(space, **options)
    from autodropout.controller.config import ControllerConfig

    return module.ControllerSearcher(space, config=ControllerConfig(**settings), **options)


def target_for(space: Any, seed: int) -> list[int]:
    """The hidden target: a pattern of the space drawn at random (so a match of 1 is reachable)."""
    return space.sample(random.Random(10_000 + seed))


def free_positions(space: Any, target: list[int]) -> list[int]:
    """The positions of ``target`` whose decision had more than one allowed choice after its prefix."""
    masks = (space.choice_mask(target[:i]) for i in range(len(target)))
    return [i for i, mask in enumerate(masks) if mask is None or sum(mask) > 1]


def suggestion_tokens(space: Any, config: dict[str, Any]) -> list[int]:
    """A suggestion's tokens, read back from the pattern it carries (a ``--reference`` revision from
    before the trial config carried the pattern once also sent them as ``"tokens"``)."""
    if "tokens" in config:
        return list(config["tokens"])
    from autodropout.search_spaces import pattern_from_json

    return space.encode(pattern_from_json(space, config["pattern"], config.get("embeddings", [])))


def drive(searcher: Any, reward: Any, n: int, concurrency: int, rng: random.Random,
          after: Any = None) -> list[list[int]]:
    """Tune's loop without Tune: keep ``concurrency`` trials live, complete a random one, repeat;
    ``after(completed)`` is called after each completion.

    Returns the tokens in suggestion order (the order the searcher sampled them)."""
    searcher.set_max_concurrency(concurrency)
    live: list[str] = []
    tokens: dict[str, list[int]] = {}
    completed = 0
    while completed < n:
        while len(live) < concurrency and len(tokens) < n:
            trial_id = f"trial_{len(tokens):05d}"
            config = searcher.suggest(trial_id)
            if config is None:
                break
            live.append(trial_id)
            tokens[trial_id] = suggestion_tokens(searcher.space, config)
        trial_id = live.pop(rng.randrange(len(live)))
        searcher.on_trial_complete(trial_id, {"reward": reward(tokens[trial_id])})
        completed += 1
        if after is not None:
            after(completed)
    return [tokens[f"trial_{i:05d}"] for i in range(n)]


def policy_entropy(searcher: Any) -> float:
    """Mean over 512 fresh samples of the summed per-step entropies. Reported as a share of the
    untrained policy's: a decision that ``choice_mask`` forces has no entropy, so on the version-3
    conv space even the untrained policy has only 43% of the unmasked maximum."""
    with torch.no_grad():
        _, _, entropies = searcher.policy.sample(512, generator=torch.Generator().manual_seed(12345))
    return float(entropies.mean())


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One search: ``job`` = {kind, settings, space, seed, variant, n, concurrency}."""
    space = make_space(job["space"])
    seed, variant = job["seed"], job["variant"]
    target = target_for(space, seed)
    noise = random.Random(20_000 + seed)

    free = free_positions(space, target)

    def match(tokens: list[int]) -> float:
        return sum(tokens[i] == target[i] for i in free) / len(free)

    def reward(tokens: list[int]) -> float:
        m = match(tokens)
        if variant == "clean":
            return m
        if variant == "noisy":
            return m + noise.gauss(0.0, NOISE_SD)
        if variant == "squeezed":
            return 0.97 + 0.02 * m
        return noise.gauss(0.5, NOISE_SD)  # "noise": no signal

    start = None
    if job.get("warm"):
        from warm_start_candidates import start_for

        start = {"tokens": start_for(space, target, job["start"], seed), "warm": job["warm"]}
    searcher = make_searcher(job["kind"], space, seed, job.get("settings"), start)
    entropy: dict[str, float] = {}
    untrained = policy_entropy(searcher) if job.get("entropy_at") else None

    def snapshot(completed: int) -> None:
        if completed in job.get("entropy_at", ()):  # str keys: the result goes through JSON
            entropy[str(completed)] = policy_entropy(searcher) / untrained

    began = time.perf_counter()
    sequence = drive(searcher, reward, job["n"], job["concurrency"], random.Random(30_000 + seed), snapshot)
    seconds = time.perf_counter() - began
    return {**job, "match": [match(t) for t in sequence], "entropy": entropy, "seconds": seconds,
            "tokens": sequence, "target": target}


def run_jobs(jobs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        return [run_job(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_job, jobs))


def run_reference(rev: str, jobs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Run ``jobs`` (default settings) against the package at git revision ``rev``, in a child process."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(root), "archive", rev, "autodropout"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        child = subprocess.run([sys.executable, __file__, "--child", str(workers)], input=json.dumps(jobs),
                               env=env, check=True, capture_output=True, text=True)
    return json.loads(child.stdout)


# -- statistics and tables ---------------------------------------------------------------------
def mean_se(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return m, se


def fmt(values: list[float], digits: int = 3) -> str:
    m, se = mean_se(values)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def fmt_diff(values: list[float]) -> str:
    m, se = mean_se(values)
    return f"{m:+.3f} ± {se:.3f}"


def best(match: list[float], n: int) -> float:
    return max(match[:n])


def last20(match: list[float], n: int) -> float:
    k = max(1, n // 5)
    return statistics.fmean(match[n - k:n])


def collect(results: list[dict[str, Any]], kind: str, variant: str, seeds: list[int]) -> list[list[float]]:
    by_seed = {r["seed"]: r for r in results if r["kind"] == kind and r["variant"] == variant}
    return [by_seed[s]["match"] for s in seeds]


def search_jobs(kind: str, space: str, seeds: list[int], budget: int, noise_at: list[int], concurrency: int,
                settings: dict[str, Any] | None, variants: tuple[str, ...] = VARIANTS) -> list[dict[str, Any]]:
    """Jobs for one searcher: each reward variant to ``budget`` samples and, for a controller, noise-only
    rewards with the policy's entropy measured after each count in ``noise_at``."""
    jobs = [{"kind": kind, "settings": settings, "space": space, "seed": s, "variant": v, "n": budget,
             "concurrency": concurrency} for v in variants for s in seeds]
    if kind == "controller" and noise_at:
        jobs += [{"kind": kind, "settings": settings, "space": space, "seed": s, "variant": "noise",
                  "n": max(noise_at), "entropy_at": sorted(noise_at), "concurrency": concurrency} for s in seeds]
    return jobs


def _arm_table(names: list[str], seeds: list[int], budgets: list[int], arms: dict[str, list[dict[str, Any]]],
               random_results: list[dict[str, Any]], statistic: Any, checks: dict[str, Any] | None = None) -> None:
    """One Markdown table: ``statistic(result, n)`` per reward variant and budget, for random search and
    each arm with its paired difference from random; the differences go into ``checks`` if given."""
    print("| reward | samples | random | " + " | ".join(f"{a} | {a} - random" for a in names) + " |")
    print("|" + "---|" * (2 + 1 + 2 * len(names)))
    for variant in VARIANTS:
        rnd = collect(random_results, "random", variant, seeds)
        for n in budgets:
            cells = [variant, str(n), fmt([statistic(m, n) for m in rnd])]
            for a in names:
                ctl = collect(arms[a], arms[a][0]["kind"], variant, seeds)
                diff = [statistic(c, n) - statistic(r, n) for c, r in zip(ctl, rnd)]
                cells += [fmt([statistic(m, n) for m in ctl]), fmt_diff(diff)]
                if checks is not None:
                    checks[(a, variant, n)] = mean_se(diff)
            print("| " + " | ".join(cells) + " |")


def report(space: str, seeds: list[int], budgets: list[int], noise_at: list[int],
           arms: dict[str, list[dict[str, Any]]], random_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the Markdown tables of one space; return the target checks of the first arm."""
    names = list(arms)
    checks: dict[str, Any] = {}
    print(f"\n### {space}: best match found (mean ± SE over {len(seeds)} seeds)\n")
    _arm_table(names, seeds, budgets, arms, random_results, best, checks)
    print(f"\n### {space}: mean match of the last 20% of the samples\n")
    _arm_table(names, seeds, budgets, arms, random_results, last20)
    if not any(r["variant"] == "noise" for a in names for r in arms[a]):  # no policy (--no-lstm)
        return checks
    print(f"\n### {space}: policy entropy after noise-only rewards, share of the untrained policy's (mean ± SE, min)\n")
    print("| controller | " + " | ".join(f"after {n}" for n in noise_at) + " | seconds per 100 samples |")
    print("|---|" + "---|" * len(noise_at) + "---|")
    for i, a in enumerate(names):
        noise = [r for r in arms[a] if r["variant"] == "noise"]
        if not noise:  # evolution has no policy
            continue
        cells = []
        for n in noise_at:
            shares = [100 * r["entropy"][str(n)] for r in noise]
            cells.append(f"{fmt(shares, 1)}% (min {min(shares):.0f}%)")
            if i == 0:
                checks[f"entropy{n}"] = mean_se([s / 100 for s in shares])
        per100 = 100 * sum(r["seconds"] for r in arms[a]) / sum(r["n"] for r in arms[a])
        print(f"| {a} | " + " | ".join(cells) + f" | {per100:.1f} |")
    return checks


def print_checks(space: str, checks: dict[str, Any], budgets: list[int], controller: str = "new",
                 evolution: list[str] = ()) -> None:
    print(f"\n{space}, targets for the new controller:")
    if "entropy100" in checks:
        m, _ = checks["entropy100"]
        print(f"- entropy after 100 noise-only rewards >= 90% of the untrained policy's: {100 * m:.1f}% -> "
              f"{'met' if m >= 0.9 else 'NOT met'}")
    for variant in VARIANTS:
        if 100 in budgets and (controller, variant, 100) in checks:  # not with --no-lstm
            m, se = checks[(controller, variant, 100)]
            print(f"- {variant}, 100 samples: best-found ahead of random by > 2 SE: {m:+.3f} vs 2 x {se:.3f} -> "
                  f"{'met' if m > 2 * se else 'NOT met'}")
        if 300 in budgets and (controller, variant, 300) in checks:
            m, se = checks[(controller, variant, 300)]
            print(f"- {variant}, 300 samples: best-found ahead of random by > +0.13: {m:+.3f} (SE {se:.3f}) -> "
                  f"{'met' if m > 0.13 else 'NOT met'}")
        for arm in evolution:
            if 24 in budgets:
                m, se = checks[(arm, variant, 24)]
                print(f"- {arm}, {variant}, 24 samples: best-found ahead of random by > 2 SE: {m:+.3f} vs "
                      f"2 x {se:.3f} -> {'met' if m > 2 * se else 'NOT met'}")


# -- the sweep of candidate update rules ---------------------------------------------------------
#: Candidates around the chosen defaults, one or two settings changed at a time ({} = the defaults).
SWEEP: dict[str, dict[str, Any]] = {
    "defaults": {},
    "heads shared by decision type (ENAS)": {"share_heads": True},
    "raw advantages (no spread)": {"normalize_advantages": False},
    "lr 0.01, entropy_weight 0.001 (the first defaults)": {"lr": 0.01, "entropy_weight": 0.001},
    "SGD, lr 0.05": {"optimizer": "sgd", "lr": 0.05},
    "lr 0.0015": {"lr": 0.0015},
    "lr 0.004": {"lr": 0.004},
    "entropy_weight 0.01": {"entropy_weight": 0.01},
    "entropy_weight 0.1": {"entropy_weight": 0.1},
    "samples_per_update 4": {"samples_per_update": 4},
    "baseline_decay 0.95": {"baseline_decay": 0.95},
    "no ratio clip (clip_ratio None)": {"clip_ratio": None},
    "samples_per_update 16, lr 0.00035, entropy_weight 1e-4 (paper-scale presets)":
        {"samples_per_update": 16, "lr": 0.00035, "entropy_weight": 1e-4},
    "samples_per_update 16, lr 0.006": {"samples_per_update": 16, "lr": 0.006},
}


def sweep(space: str, seeds: list[int], noise_at: list[int], concurrency: int, workers: int) -> None:
    """Each candidate on clean, noisy and noise-only rewards; squeezed too where units matter (raw advantages)."""
    rnd = run_jobs(search_jobs("random", space, seeds, 300, [], concurrency, None, VARIANTS), workers)
    print(f"\n### sweep on {space}, {len(seeds)} seeds: best-found, controller - random (mean ± SE)\n")
    print("| candidate | " + " | ".join(f"entropy after {n} noise" for n in noise_at)
          + " | clean 100 | clean 300 | noisy 100 | noisy 300 | squeezed 100 | squeezed 300 |")
    print("|---|" + "---|" * (len(noise_at) + 6))
    for name, settings in SWEEP.items():
        unit_free = settings.get("normalize_advantages", True)
        variants = ("clean", "noisy") if unit_free else VARIANTS
        res = run_jobs(search_jobs("controller", space, seeds, 300, noise_at, concurrency, settings, variants),
                       workers)
        noise = [r for r in res if r["variant"] == "noise"]
        cells = [name] + [fmt([100 * r["entropy"][str(n)] for r in noise], 1) + "%" for n in noise_at]
        for variant in VARIANTS:
            for n in (100, 300):
                if variant not in variants:  # unit-free: the same tokens as clean (tested), not run again
                    cells.append("= clean")
                    continue
                ctl = collect(res, "controller", variant, seeds)
                ref = collect(rnd, "random", variant, seeds)
                cells.append(fmt_diff([best(c, n) - best(r, n) for c, r in zip(ctl, ref)]))
        print("| " + " | ".join(cells) + " |", flush=True)


def warm_start(space: str, seeds: list[int], budgets: list[int], starts: list[str], concurrency: int,
               workers: int, variant: str) -> None:
    """Every arm of ``WARM_ARMS`` from each start point (benchmarks/warm_start_candidates.py)."""
    from warm_start_candidates import print_warm_start, warm_start_jobs

    jobs = warm_start_jobs(space, seeds, max(budgets), starts, concurrency, variant)
    print_warm_start(make_space(space), run_jobs(jobs, workers), budgets, starts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--space", nargs="+", default=["conv", "transformer"], choices=["conv", "transformer"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[24, 100, 300])
    parser.add_argument("--noise-samples", type=int, nargs="+", default=[100, 300],
                        help="measure the entropy after these many noise-only rewards")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--reference", default="main", help="git revision to compare with ('none' to skip)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one core each)")
    parser.add_argument("--sweep", action="store_true", help="measure the candidate update rules instead")
    parser.add_argument("--warm-start", nargs="+", metavar="START",
                        help="measure searches that start from a known point instead: each START is 'd=N' "
                             "(N tokens away from the hidden target) or 'far' (every decision that can differ does)")
    parser.add_argument("--variant", default="noisy", choices=VARIANTS, help="the reward of --warm-start")
    parser.add_argument("--evolution", nargs="*", default=["16/8"], metavar="P/S",
                        help="regularized evolution arms, population/sample size each (default: 16/8, the defaults)")
    parser.add_argument("--no-lstm", action="store_true",
                        help="leave the LSTM controller out: random search and evolution only, which take "
                             "seconds, so that many seeds are cheap")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.child:  # reference revision: jobs on stdin, results on stdout
        print(json.dumps(run_jobs(json.loads(sys.stdin.read()), args.child)))
        return

    import autodropout

    seeds = list(range(args.seeds))
    print(f"autodropout from {Path(autodropout.__file__).parent}; {args.seeds} seeds, "
          f"concurrency {args.concurrency}, completions in random order")
    began = time.perf_counter()
    for space in args.space:
        if args.sweep:
            sweep(space, seeds, args.noise_samples, args.concurrency, args.jobs)
            continue
        if args.warm_start:
            warm_start(space, seeds, args.budgets, args.warm_start, args.concurrency, args.jobs, args.variant)
            continue
        rnd = run_jobs(search_jobs("random", space, seeds, max(args.budgets), [], args.concurrency, None), args.jobs)
        arms = {}
        if not args.no_lstm:
            jobs = search_jobs("controller", space, seeds, max(args.budgets), args.noise_samples, args.concurrency,
                               None)
            arms["new"] = run_jobs(jobs, args.jobs)
            if args.reference != "none":
                arms[f"old ({args.reference})"] = run_reference(args.reference, jobs, args.jobs)
        for setting in args.evolution:
            population, sample_size = map(int, setting.split("/"))
            arms[f"evolution {setting}"] = run_jobs(search_jobs(
                "evolution", space, seeds, max(args.budgets), [], args.concurrency,
                {"population": population, "sample_size": sample_size}), args.jobs)
        checks = report(space, seeds, args.budgets, args.noise_samples, arms, rnd)
        print_checks(space, checks, args.budgets, evolution=[f"evolution {s}" for s in args.evolution])
    print(f"\n({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
