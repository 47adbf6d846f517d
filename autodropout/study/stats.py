"""The statistics of a study: mean, standard error and a t-based 95% interval, alone and paired.

For values ``x_1 .. x_n`` (one per evaluation seed):

* mean ``m = sum(x) / n``; sample standard deviation ``s = sqrt(sum((x - m)^2) / (n - 1))``;
* standard error ``se = s / sqrt(n)``;
* 95% interval ``m -/+ t_{0.975, n-1} * se``, with Student's t quantile (``scipy.stats.t``), which is
  the right width for the few seeds a study affords (with 5 seeds, t = 2.776 rather than 1.96).

A paired difference ``a - b`` is the same summary of the per-seed differences ``a_i - b_i`` over the
seeds both have (same training seed = same initialisation and batch order, so the seed-to-seed noise
that both share cancels). With one value there is no spread: ``se`` and the interval are ``None``.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import t as student_t

#: Confidence of the intervals.
LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """``n`` values: their mean, sample standard deviation, standard error and 95% interval."""

    n: int
    mean: float | None
    sd: float | None
    se: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "se": self.se,
                "ci95": None if self.low is None else [self.low, self.high]}

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def t_quantile(df: int, level: float = LEVEL) -> float:
    """Two-sided Student's t quantile: ``t_{(1 + level) / 2, df}``."""
    return float(student_t.ppf((1 + level) / 2, df))


def summarize(values: Sequence[float]) -> Summary:
    """The :class:`Summary` of ``values`` (non-finite values are a bug upstream and are refused)."""
    values = [float(v) for v in values]
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"summarize: non-finite value in {values}")
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None, None, None)
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, None, None, None, None)
    sd = statistics.stdev(values)
    se = sd / math.sqrt(n)
    half = t_quantile(n - 1) * se
    return Summary(n, mean, sd, se, mean - half, mean + half)


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Summary:
    """The summary of ``a[seed] - b[seed]`` over the seeds both have."""
    return summarize([a[seed] - b[seed] for seed in sorted(set(a) & set(b))])


def per_seed_mean(runs: Sequence[Mapping[int, float]]) -> dict[int, float]:
    """Per seed, the mean over ``runs`` (several search seeds' patterns) of the values that seed has."""
    seeds = sorted({seed for run in runs for seed in run})
    return {seed: statistics.fmean(run[seed] for run in runs if seed in run) for seed in seeds}
