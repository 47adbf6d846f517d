"""``search_progress.png``: how a search's rewards moved, trial by trial, in sampling order.

Three things on one axis: each trial's reward (failed trials as crosses on the bottom edge), the
best reward so far, and the mean of the last ``k`` completed trials (the controller learning shows as
that mean rising). Plain matplotlib ``Figure`` on the Agg canvas (no pyplot state), written
atomically, so a viewer that reloads the file never sees half a picture.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autodropout.core.atomic import atomic_write


def running_window(total: int) -> int:
    """``k`` of the running mean: a tenth of the trials, between 4 and 50."""
    return max(4, min(50, total // 10))


def progress_series(points: Sequence[tuple[int, float | None]], window: int) -> dict[str, list]:
    """The plotted series from ``(sampling index, reward or None if the trial failed)`` pairs:
    ``index``/``reward`` of completed trials, ``best`` so far and ``mean`` of the last ``window``
    at each of them, and the ``failed`` indices."""
    ordered = sorted(points)
    done = [(i, r) for i, r in ordered if r is not None and math.isfinite(r)]
    best, mean, rewards = [], [], []
    for _, reward in done:
        rewards.append(reward)
        best.append(max(best[-1], reward) if best else reward)
        recent = rewards[-window:]
        mean.append(sum(recent) / len(recent))
    return {"index": [i for i, _ in done], "reward": rewards, "best": best, "mean": mean,
            "failed": [i for i, r in ordered if r is None or not math.isfinite(r)]}


def plot_search_progress(path: str | Path, points: Sequence[tuple[int, float | None]], total: int,
                         title: str = "search progress") -> Path:
    """Draw the progress of a search of ``total`` trials from its ``points`` into ``path`` (PNG)."""
    window = running_window(total)
    series = progress_series(points, window)
    figure = Figure(figsize=(7, 3.8))
    figure.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.83)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(series["index"], series["reward"], "o", ms=3.5, color="#4c72b0", alpha=0.7, label="trial reward")
    ax.step(series["index"], series["best"], where="post", color="#c44e52", lw=1.5, label="best so far")
    ax.plot(series["index"], series["mean"], color="#55a868", lw=1.5, label=f"mean of the last {window}")
    if series["failed"]:
        ax.plot(series["failed"], [0] * len(series["failed"]), "x", color="black", ms=5, clip_on=False,
                transform=ax.get_xaxis_transform(), label="failed")
    ax.set_xlim(0, max(total, len(points)) + 1)
    ax.set_xlabel("trial (sampling order)")
    ax.set_ylabel("reward")
    ended = len(points)
    best = f", best {series['best'][-1]:.4f}" if series["best"] else ""
    figure.suptitle(f"{title}: {ended} of {total} trials{best}", fontsize=10)
    ax.grid(alpha=0.3)
    if ended:  # above the axes, where it hides no point
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, fontsize=8, frameon=False)
    return atomic_write(path, lambda fh: figure.savefig(fh, format="png", dpi=100))
