"""The settings a tuned baseline trains: a lattice over its domain, then a finer one around the best.

A domain is plain data, one entry per tuned parameter: ``["uniform", low, high]`` (a range, e.g. a
rate) or ``["choice", [v1, v2, ...]]`` (a list, e.g. block sizes). A budget of ``n`` trials runs in two
rounds (:func:`rounds`): the first is :func:`design` over the whole domain, the second
:func:`refined` around the first round's best. Which searcher to use, and these two rounds, were
chosen by ``benchmarks/tuner_convergence.py`` (docs/study.md has the measurement).

No Ray and no randomness here: the settings depend only on the domain, the budget and (second
round) the first round's best, so a tuning is reproducible and a resumed one plans the same trials.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodropout.core.errors import ConfigError

#: A domain entry as plain data (JSON-able, so it can live in a study's plan).
Domain = Sequence[Any]
#: How a tuning with these rounds chose its trials, as a study's results and report name it.
TUNER = "a lattice over the domain, then a finer lattice around its best"


@dataclass(frozen=True)
class Axis:
    """One tuned parameter: a range ``[low, high]`` (``values`` empty) or a list of ``values``."""

    name: str
    low: float = 0.0
    high: float = 0.0
    values: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, name: str, spec: Domain) -> Axis:
        """``"p", ["uniform", 0.0, 0.5]`` or ``"block_size", ["choice", [3, 5]]``; anything else raises."""
        kind, *args = spec
        if kind == "uniform" and len(args) == 2:
            return cls(name, low=float(args[0]), high=float(args[1]))
        if kind == "choice" and len(args) == 1 and list(args[0]):
            return cls(name, values=tuple(args[0]))
        raise ConfigError(f"tuned domain {list(spec)!r}: expected ['uniform', low, high] or ['choice', [values]]")

    def at(self, u: float) -> Any:
        """The parameter at lattice coordinate ``u`` in (0, 1): a rate, or the value of ``u``'s band."""
        if self.values:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        return round(self.low + float(u) * (self.high - self.low), 6)

    def spread(self, u: np.ndarray) -> np.ndarray:
        """Coordinates for judging how spread settings are: a list's value by its band's centre."""
        k = len(self.values)
        return (np.minimum(np.floor(u * k), k - 1) + 0.5) / k if k else u


def axes(domains: Mapping[str, Domain]) -> list[Axis]:
    """The parsed axes of ``domains`` (a malformed entry raises :class:`ConfigError`)."""
    return [Axis.parse(name, spec) for name, spec in domains.items()]


def rounds(domains: Mapping[str, Domain], trials: int) -> tuple[int, int]:
    """``(first, second)`` round sizes: the second gets ``2 * (trials // 4)`` trials (even, so that no
    setting of it repeats the first round's best, which sits at the centre of its range), none
    when the domain has no range to refine."""
    if trials < 1:
        raise ConfigError(f"tuned trials: expected at least 1, got {trials}")
    second = 2 * (trials // 4) if any(not axis.values for axis in axes(domains)) else 0
    return trials - second, second


def design(domains: Mapping[str, Domain], trials: int) -> list[dict[str, Any]]:
    """``trials`` settings spread over ``domains``, in the order they run.

    Point ``i`` of a rank-1 lattice is ``u_j = ((i * g**j) mod n + 0.5) / n`` on axis ``j``
    (Korobov form, ``n = trials``): with ``g`` coprime to ``n`` every axis sees each of the ``n``
    midpoints once, so a range gets the midpoint grid of ``n`` equal cells (every value of the range
    within half a cell of a setting). ``g`` minimises the Audze-Eglais energy ``sum 1 / d**2`` over
    pairs of settings (a list's values at their bands' centres; ties: the smallest ``g``), which
    gives each block size rates across the whole range. The order is farthest-point first, from the
    setting nearest the domain's centre, so that the first trials already span the domain.
    """
    parsed = axes(domains)
    if not parsed:  # nothing to tune (Concrete Dropout learns its rates): the defaults, once per trial
        return [{} for _ in range(trials)]
    n = trials
    best: tuple[float, np.ndarray] = (math.inf, np.full((n, len(parsed)), 0.5))
    for g in [g for g in range(1, n) if math.gcd(g, n) == 1] or [1]:
        u = (np.outer(np.arange(n), [pow(g, j, n) for j in range(len(parsed))]) % n + 0.5) / n
        coords = np.stack([axis.spread(u[:, j]) for j, axis in enumerate(parsed)], axis=1)
        squared = ((coords[:, None] - coords[None]) ** 2).sum(axis=-1)[np.triu_indices(n, 1)]
        energy = float(np.sum(1.0 / np.maximum(squared, 1e-12)))
        if energy < best[0] - 1e-9:
            best = (energy, u)
    u = best[1]
    return [{axis.name: axis.at(u[i, j]) for j, axis in enumerate(parsed)} for i in _spread_order(u)]


def refined(domains: Mapping[str, Domain], first: int, second: int, best: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The second round: :func:`design` with ``second`` settings over the box around ``best``.

    Each range is narrowed to ``best -/+ (high - low) * first ** (-1 / r)`` (``r`` ranges; in one
    dimension the first round's neighbours of ``best``), clipped to the range; each list is held at
    ``best``'s value.
    """
    parsed = axes(domains)
    ranges = sum(not axis.values for axis in parsed)
    box: dict[str, list[Any]] = {}
    for axis in parsed:
        if axis.values:
            box[axis.name] = ["choice", [best[axis.name]]]
        else:
            half = (axis.high - axis.low) * first ** (-1.0 / ranges)
            centre = float(best[axis.name])
            box[axis.name] = ["uniform", max(axis.low, centre - half), min(axis.high, centre + half)]
    return design(box, second) if second else []


def _spread_order(u: np.ndarray) -> list[int]:
    """Greedy farthest-point order of the rows of ``u``, starting nearest the centre (ties: lowest row)."""
    order = [int(np.argmin(np.linalg.norm(u - 0.5, axis=1)))]
    nearest = np.linalg.norm(u - u[order[0]], axis=1)
    while len(order) < len(u):
        order.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(u - u[order[-1]], axis=1))
    return order
