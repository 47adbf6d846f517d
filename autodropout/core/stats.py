"""The statistics of every report (``autodropout study`` and ``autodropout transfer``): mean, standard
error and a t-based 95% interval, alone and paired, and how a report writes them.

For values ``x_1 .. x_n`` (one per evaluation seed):

* mean ``m = sum(x) / n``; sample standard deviation ``s = sqrt(sum((x - m)^2) / (n - 1))``;
* standard error ``se = s / sqrt(n)``;
* 95% interval ``m -/+ t_{0.975, n-1} * se``, with Student's t quantile (``scipy.stats.t``), which is
  the right width for the few seeds a study affords (with 5 seeds, t = 2.776 rather than 1.96).

A paired difference ``a - b`` is the same summary of the per-seed differences ``a_i - b_i`` over the
seeds both have (same training seed = same initialisation and batch order, so the seed-to-seed noise
that both share cancels). With one value there is no spread: ``se`` and the interval are ``None``.

Both commands write a summary the same way (:func:`mean_se`, :func:`interval`): the mean to 4 significant
digits, ``±`` the standard error to 2, then the interval; a difference carries its sign.

This module sits in the core layer (standard library and SciPy only), so that the transfer report and
the study import it downward and neither depends on the other.
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


def better(value: float, mode: str) -> bool:
    """Whether a difference ``value`` is an improvement for a metric of ``mode`` (``"max"`` or ``"min"``)."""
    return value > 0 if mode == "max" else value < 0


def verdict(diff: Summary, mode: str) -> str:
    """``better``, ``worse`` or ``no difference at 95%``: a paired difference read at its interval."""
    if not diff.excludes_zero():
        return "no difference at 95%"
    return "better" if better(diff.mean, mode) else "worse"


def number(value: float, digits: int, sign: str = "") -> str:
    """``digits`` significant digits, trailing zeros kept (0.8600), no exponent below ``10**digits``."""
    if abs(value) >= 10 ** digits:
        return f"{value:{sign}.0f}"
    return f"{value:{sign}#.{digits}g}".rstrip(".")


def fmt(value: float | None, digits: int = 4) -> str:
    """A value of a report table (``-`` for none)."""
    return "-" if value is None else number(value, digits)


def fmt_signed(value: float | None) -> str:
    """A difference of a report table, with its sign (``-`` for none)."""
    return "-" if value is None else number(value, 3, "+")


def interval(s: Summary, signed: bool = False) -> str:
    """``[low, high]``, or ``-`` without spread."""
    if s.low is None:
        return "-"
    f = fmt_signed if signed else fmt
    return f"[{f(s.low)}, {f(s.high)}]"


def mean_se(s: Summary, signed: bool = False) -> str:
    """``0.8533 ± 0.0088`` (``+0.0767 ± 0.0033`` when ``signed``); the mean alone without spread."""
    head = fmt_signed(s.mean) if signed else fmt(s.mean)
    if s.se is None:
        return head
    # A spread of rounding noise (identical values) is written as 0, not as 1e-17.
    se = 0.0 if s.se < 1e-12 * max(1.0, abs(s.mean)) else s.se
    return head + " ± " + (number(se, 2) if se else "0")
