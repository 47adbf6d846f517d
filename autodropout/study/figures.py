"""The study's pictures (matplotlib Agg, written atomically with :func:`autodropout.viz.save_figure`):

* ``search_curves.png``: best validation reward so far against trials, per search arm: the mean over
  search seeds with a band from the worst to the best seed, each trial's reward as a faint dot, and
  each tuned baseline's best so far (dashed) at the same budget;
* ``test_metrics.png``: per target, each arm's test metric per training seed (dots), its mean and
  95% interval (bar);
* ``best_pattern.png``: the published LSTM arm's selected pattern (cold or warm, :func:`published_arm`), each
  site at its size in the searched model.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from autodropout.search_spaces import load_patterns
from autodropout.study.plan import StudyDir
from autodropout.study.provenance import pattern_file, published_arm
from autodropout.study.results import TargetSummary, search_curves, tuning_curves
from autodropout.viz import pattern_figure, save_figure, site_sizes


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
                ax.errorbar([x], [arm.test.mean], yerr=[[arm.test.mean - arm.test.low], [arm.test.high - arm.test.mean]],
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


def write_figures(study: StudyDir, summaries: list[TargetSummary]) -> list[Path]:
    written = []
    for name, figure in (("search_curves.png", search_figure(study)), ("test_metrics.png", metric_figure(summaries))):
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
