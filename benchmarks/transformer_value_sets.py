"""The smallest Transformer size / stride value sets (docs/search_spaces.md, search_spaces/values.py).

Wanted: sets that contain version 2's {1, 2, 4} x {4, 8, 16} (so its patterns stay in the space) and
whose nominal rates size / (size + stride) come within 0.02 of every rate in [0, 0.5], the tuning
domain of the baselines a study compares with (issue 20), with the fewest (size, stride) pairs.

For each size set (1, 2, 4 and up to four more sizes from 3..16), an integer program (scipy's milp)
picks the fewest strides from 1..256 such that every point of a grid on [0, 0.5] is within 0.02 of a
nominal rate; ties prefer small strides. The answer is checked exactly (fractions, on the whole
interval); an uncovered point is added to the grid and the program solved again. About 1.5 minutes
on one core.

Usage::

    python benchmarks/transformer_value_sets.py
"""
import itertools
from fractions import Fraction as F

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

TOL, TOP = F(2, 100), F(1, 2)
POOL = np.arange(1, 257)
BASE_SIZES, BASE_STRIDES = (1, 2, 4), (4, 8, 16)


def uncovered(rates):
    """Leftmost rate of [0, 1/2] farther than TOL from every rate, or None."""
    p = F(0)
    for r in sorted(rates):
        if r - TOL > p:
            return p
        p = max(p, r + TOL)
        if p > TOP:
            return None
    return p if p <= TOP else None


def fewest_strides(sizes):
    points = list(np.linspace(0, 0.5, 1001))
    lower = np.isin(POOL, BASE_STRIDES).astype(float)
    cost = 1 + 1e-4 * POOL
    while True:
        rates = np.array(sizes)[:, None] / (np.array(sizes)[:, None] + POOL[None, :])  # (S, T)
        cover = (np.abs(rates[None] - np.array(points)[:, None, None]) <= 0.02 + 1e-12).any(1).astype(float)
        res = milp(cost, integrality=np.ones(len(POOL)), bounds=Bounds(lower, np.ones(len(POOL))),
                   constraints=LinearConstraint(cover, lb=np.ones(len(points))))
        if res.x is None:
            return None
        strides = [int(t) for t, x in zip(POOL, res.x) if x > 0.5]
        gap = uncovered({F(s, s + t) for s in sizes for t in strides})
        if gap is None:
            return strides
        points += [float(gap) + 1e-9, float(gap) + 1e-6]


if __name__ == "__main__":
    rows = []
    for extra in range(0, 5):
        for add in itertools.combinations([s for s in range(3, 17) if s not in BASE_SIZES], extra):
            sizes = sorted({*BASE_SIZES, *add})
            strides = fewest_strides(sizes)
            if strides:
                rows.append((len(sizes) * len(strides), len(sizes) + len(strides), sizes, strides))
    rows.sort()
    print("fewest (size, stride) pairs:", rows[0][0], "fewest choices:", min(r[1] for r in rows))
    for row in rows[:8]:
        print(row)
    sizes, strides = rows[0][2], rows[0][3]
    print("rates:", ", ".join(f"{r} ({float(r):.3f})" for r in sorted({F(s, s + t) for s in sizes for t in strides})))
