"""``controller_synthetic.py --warm-start``: searches that start from a known point, on the synthetic
target-matching reward; the start points, the arms, the table, and the candidate that lost.

The start point is drawn away from the hidden target: ``d=N`` exactly N tokens away (a good start),
``far`` with every decision that can differ different (a misleading one). Arms: random search and
the LSTM cold; random search around the start and the LSTM with the decaying logit prior towards it
at several half-lives (the package's, :mod:`autodropout.controller.warm_start`); and the LSTM fitted
by maximum likelihood to the start (below): the candidate that lost the measurement (docs/search.md,
"Starting from a known point"), kept here only so that it can be measured again.

The fit: Adam steps (lr :data:`FIT_LR`, an optimiser of its own, discarded after) on ``-log p(start)``
until ``log p(start) >= F log q``, ``F`` the number of free decisions along the start point, so the
start's probability per free decision (geometric mean) is ``q``; REINFORCE goes on from the fitted
policy as usual (no prior).
"""
from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from autodropout.controller.policy import LSTMPolicy
from autodropout.controller.searcher import ControllerSearcher
from autodropout.controller.warm_start import allowed_counts
from autodropout.search_spaces import SearchSpace

#: The fit's Adam learning rate (0.02 overshoots q in 2-4 steps; 0.002 lands within 0.05 in 10-30) and step cap.
FIT_LR = 0.002
FIT_MAX_STEPS = 500


def fit_policy(policy: LSTMPolicy, tokens: Sequence[int], probability: float) -> int:
    """Maximum-likelihood steps on ``tokens`` until ``log p(tokens) >= F log(probability)``; returns the steps."""
    target = sum(k > 1 for k in allowed_counts(policy.space, tokens)) * math.log(probability)
    optimizer = torch.optim.Adam(policy.parameters(), lr=FIT_LR)
    steps = 0
    while steps < FIT_MAX_STEPS:
        log_prob, _ = policy.log_prob([list(tokens)])
        if float(log_prob[0].detach()) >= target:
            break
        optimizer.zero_grad(set_to_none=True)
        (-log_prob[0]).backward()
        optimizer.step()
        steps += 1
    optimizer.zero_grad(set_to_none=True)
    return steps


class FitSearcher(ControllerSearcher):
    """The controller fitted to the start point instead of the prior (same first suggestion: the start)."""

    def _build(self, config: Any) -> None:
        super()._build(config)
        self.policy.set_prior(None)

    def _start(self, trial_id: str) -> list[int]:
        fit_policy(self.policy, list(self.start_tokens or ()), self.start_probability)
        return super()._start(trial_id)


def start_for(space: Any, target: list[int], start: str, seed: int) -> list[int]:
    """A start point away from the target: ``"far"`` changes every decision the space lets change
    (a misleading start), ``"d=N"`` exactly N tokens (drawn with ``choice_mask`` repairs until the
    Hamming distance is exactly N)."""
    rng = random.Random(40_000 + seed)
    if start == "far":
        return away(space, target, set(range(len(target))), rng)
    distance = int(start.removeprefix("d="))
    for _ in range(10_000):
        tokens = away(space, target, set(rng.sample(range(len(target)), distance)), rng)
        if sum(a != b for a, b in zip(tokens, target)) == distance:
            return tokens
    raise RuntimeError(f"no start point at distance {distance} found")


def away(space: Any, target: list[int], change: set[int], rng: random.Random) -> list[int]:
    """``target`` with the positions in ``change`` set to another allowed choice, in order; a position
    whose target token the new prefix forbids takes an allowed one at random."""
    tokens: list[int] = []
    for position, token in enumerate(target):
        mask = space.choice_mask(tokens)
        allowed = [i for i in range(len(space.decisions[position].choices)) if mask is None or mask[i]]
        others = [i for i in allowed if i != token]
        tokens.append(rng.choice(others) if (position in change and others) or token not in allowed else token)
    return tokens


#: (label, searcher kind, warm start, controller settings); no warm start: cold.
WARM_ARMS: list[tuple[str, str, str | None, dict[str, Any] | None]] = [
    ("random search, cold", "random", None, None),
    ("LSTM, cold", "controller", None, None),
    ("random search around the start (the package's)", "random", "mutate", None),
    ("LSTM, prior, half-life 4", "controller", "prior", {"start_half_life": 4}),
    ("LSTM, prior, half-life 8 (the package's)", "controller", "prior", None),
    ("LSTM, prior, half-life 16", "controller", "prior", {"start_half_life": 16}),
    ("LSTM, prior, half-life 32", "controller", "prior", {"start_half_life": 32}),
    ("LSTM, ML fit", "controller", "fit", None),
]


def quartiles(values: list[float], digits: int = 3) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{q2:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def warm_start_jobs(space: str, seeds: list[int], n: int, starts: list[str], concurrency: int,
                    variant: str) -> list[dict[str, Any]]:
    """One job per arm, seed and (for a warm arm) start point; cold arms run once for every start."""
    return [{"kind": kind, "settings": settings, "space": space, "seed": seed, "variant": variant, "n": n,
             "concurrency": concurrency, "start": start, "warm": warm, "arm": label}
            for label, kind, warm, settings in WARM_ARMS for start in ([None] if warm is None else starts)
            for seed in seeds]


def print_warm_start(space: SearchSpace, results: list[dict[str, Any]], budgets: list[int], starts: list[str]) -> None:
    """Per start point: each arm's start match, distance of its first 8 samples to the start, best match
    found at each budget and its paired difference with the cold LSTM; medians [quartiles] over seeds."""
    variant, seeds = results[0]["variant"], sorted({r["seed"] for r in results})
    cold = {r["seed"]: r["match"] for r in results if r["arm"] == "LSTM, cold"}
    for start in starts:
        print(f"\n### {space.kind}, start {start}, {variant} reward: median [quartiles] over {len(seeds)} seeds\n")
        print("| arm | start's match | mean distance to the start, first 8 | "
              + " | ".join(f"best, {n}" for n in budgets) + " | "
              + " | ".join(f"best - cold LSTM's, {n}" for n in budgets) + " |")
        print("|---|" + "---|" * (2 + 2 * len(budgets)))
        for label, *_ in WARM_ARMS:
            rows = sorted((r for r in results if r["arm"] == label and r["start"] in (None, start)),
                          key=lambda r: r["seed"])
            points = [start_for(space, r["target"], start, r["seed"]) for r in rows]
            cells = [label, quartiles([_share(p, r["target"]) for p, r in zip(points, rows)]),
                     quartiles([statistics.fmean(len(p) * (1 - _share(t, p)) for t in r["tokens"][:8])
                                for p, r in zip(points, rows)], 1)]
            cells += [quartiles([max(r["match"][:n]) for r in rows]) for n in budgets]
            cells += [quartiles([max(r["match"][:n]) - max(cold[r["seed"]][:n]) for r in rows]) for n in budgets]
            print("| " + " | ".join(cells) + " |", flush=True)
    per100 = 100 * sum(r["seconds"] for r in results) / sum(r["n"] for r in results)
    print(f"\n({per100:.1f} s per 100 samples on average)")


def _share(tokens: list[int], reference: list[int]) -> float:
    return sum(a == b for a, b in zip(tokens, reference)) / len(reference)
