"""The study's pictures (matplotlib Agg, written atomically with :func:`autodropout.viz.save_figure`):

* ``search_curves.png``: best validation reward so far against trials, per search arm: the mean over
  search seeds with a band from the worst to the best seed, each trial's reward as a faint dot, and
  each tuned baseline's best so far (dashed) at the same budget;
* ``test_metrics.png``: per target, each arm's test metric per training seed (dots), its mean and
  95% interval (bar);
* ``budget_curves.png`` (a study with ``--budgets``): test metric against trials per search arm (mean
  over search seeds, band one standard error either side) and tuned baseline (band over evaluation
  seeds), ``none`` as a line, a baseline of one trial (Concrete Dropout) as a point;
* ``best_pattern.png``: the published LSTM arm's selected pattern (cold or warm, :func:`published_arm`), each
  site at its size in the searched model.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from autodropout.search_spaces import load_patterns
from autodropout.study.curves import Curve
from autodropout.study.plan import MAIN, StudyDir
from autodropout.study.provenance import pattern_file, published_arm
from autodropout.study.results import TargetSummary, search_curves, tuning_curves
from autodropout.tasks.reward import METRIC_RANGES
from autodropout.viz import pattern_figure, save_figure, site_sizes


def _clip(metric: str, low: float, high: float) -> tuple[float, float]:
    """An interval cut to the values ``metric`` can take (BLEU in [0, 100], accuracy in [0, 1])."""
    lowest, highest = METRIC_RANGES[metric]
    return max(low, lowest), min(high, highest)


def _best_so_far(rewards: list[float | None]) -> list[float | None]:
    out: list[float | None] = []
    best = None
    for r in rewards:
        if r is not None:
            best = r if best is None else max(best, r)
        out.append(best)
    return out


def search_figure(study: StudyDir) -> Figure | None:
    curves = search_curves(study)
    if not any(curves.values()):
        return None
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for colour, (arm, runs) in enumerate(curves.items()):
        if not runs:
            continue
        best = [_best_so_far(r) for r in runs]
        length = max(len(b) for b in best)
        xs, mean, low, high = [], [], [], []
        for i in range(length):
            values = [b[i] for b in best if i < len(b) and b[i] is not None]
            if values:
                xs.append(i + 1)
                mean.append(sum(values) / len(values))
                low.append(min(values))
                high.append(max(values))
        ax.plot(xs, mean, color=f"C{colour}", linewidth=2, label=f"{arm}: best so far (mean of {len(runs)} seeds)")
        ax.fill_between(xs, low, high, color=f"C{colour}", alpha=0.2, linewidth=0)
        for run in runs:
            points = [(i + 1, r) for i, r in enumerate(run) if r is not None]
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=8, color=f"C{colour}", alpha=0.3)
    for colour, (name, rewards) in enumerate(tuning_curves(study).items(), start=len(curves)):
        best = _best_so_far(rewards)
        points = [(i + 1, b) for i, b in enumerate(best) if b is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], color=f"C{colour % 10}", linestyle="--",
                linewidth=1, label=f"{name} (tuned): best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation reward")
    ax.set_title(f"{study.plan.main.experiment.name}: search and tuning at {study.plan.budget} trials "
                 "(band: worst to best search seed)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return figure


def metric_figure(summaries: list[TargetSummary]) -> Figure | None:
    if not summaries:
        return None
    width = max(len(t.arms) for t in summaries)
    figure = Figure(figsize=(1.6 + 0.8 * width * len(summaries), 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(summaries), squeeze=False)[0]
    for ax, target in zip(axes, summaries):
        for x, arm in enumerate(target.arms):
            values = list(arm.test_by_seed.values())
            ax.scatter([x] * len(values), values, s=14, color=f"C{x % 10}", alpha=0.5, zorder=3)
            if arm.test.low is not None:
                low, high = _clip(target.metric, arm.test.low, arm.test.high)
                ax.errorbar([x], [arm.test.mean], yerr=[[arm.test.mean - low], [high - arm.test.mean]],
                            fmt="o", color="black", capsize=4, zorder=4)
            elif arm.test.mean is not None:
                ax.plot([x], [arm.test.mean], "o", color="black", zorder=4)
        ax.set_xticks(range(len(target.arms)), [a.name for a in target.arms], rotation=30, ha="right", fontsize=8)
        better = "higher" if target.mode == "max" else "lower"
        ax.set_ylabel(f"test {target.metric} ({better} is better)", fontsize=8)
        ax.set_title(target.experiment, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle("test metric per arm: dots = training seeds, bar = mean and 95% interval", fontsize=9)
    return figure


def curve_figure(study: StudyDir, curves: list[Curve], metric: str, mode: str) -> Figure | None:
    if not any(c.points for c in curves):
        return None
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    budgets = study.plan.curve_budgets
    for colour, curve in enumerate(c for c in curves if c.points):
        points = [p for p in curve.points if p.budget > 0]
        style = {"color": f"C{colour % 10}", "linewidth": 2 if curve.kind == "search" else 1,
                 "linestyle": "-" if curve.kind == "search" else "--"}
        if not points:  # none: trained without regularization, no trials to spend
            ax.axhline(curve.points[0].test.mean, label=f"{curve.arm}", **{**style, "linestyle": ":"})
            continue
        xs, means = [p.budget for p in points], [p.test.mean for p in points]
        spread = [_clip(metric, p.test.mean - (p.test.se or 0.0), p.test.mean + (p.test.se or 0.0)) for p in points]
        seeds = "search seeds" if curve.kind == "search" else "training seeds"
        if len(points) == 1:
            ax.errorbar(xs, means, yerr=[[means[0] - spread[0][0]], [spread[0][1] - means[0]]], fmt="s", capsize=3,
                        color=style["color"], label=f"{curve.arm} ({points[0].budget} trial)")
            continue
        ax.plot(xs, means, marker="o", label=f"{curve.arm} (band: ± SE over {seeds})", **style)
        ax.fill_between(xs, [s[0] for s in spread], [s[1] for s in spread], color=style["color"], alpha=0.15,
                        linewidth=0)
    ax.set_xscale("log")
    ax.minorticks_off()  # the budgets are the ticks
    ax.set_xticks(sorted({1, *budgets}), [str(b) for b in sorted({1, *budgets})])
    ax.set_xlabel("trials per search or tuning (its best on validation so far)")
    better = "higher" if mode == "max" else "lower"
    ax.set_ylabel(f"test {metric} ({better} is better)")
    ax.set_title(f"{study.plan.main.experiment.name}: budget curve", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure


def write_figures(study: StudyDir, summaries: list[TargetSummary], curves: list[Curve]) -> list[Path]:
    written = []
    main = summaries[0] if summaries and summaries[0].key == MAIN else None
    budget = curve_figure(study, curves, main.metric, main.mode) if main is not None and curves else None
    for name, figure in (("search_curves.png", search_figure(study)), ("test_metrics.png", metric_figure(summaries)),
                         ("budget_curves.png", budget)):
        if figure is not None:
            written.append(save_figure(figure, study.path / name))
    arm = published_arm(study)
    if arm is not None:
        patterns = load_patterns(pattern_file(study, arm))
        pattern = patterns.best
        sizes = site_sizes(pattern.kind, len(pattern), patterns.site_shapes)
        title = (f"{study.plan.main.experiment.name}: the {arm} arm's best pattern "
                 f"(search seed {patterns.source['study']['search_seed']})")
        written.append(save_figure(pattern_figure(pattern, title=title, size=sizes), study.path / "best_pattern.png"))
    return written
