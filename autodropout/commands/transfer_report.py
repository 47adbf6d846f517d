"""The report of a transfer: every run, a summary per method, the paired differences of the pattern
against each baseline, and the files it is written to (``report.md``, ``report.json``, ``report.csv``,
``report.png``, each atomically).

The statistics are the study's (:mod:`autodropout.core.stats`): per method the mean over seeds, its standard
error and 95% t-interval; the pattern minus each baseline on test, paired by training seed (every
method trains with the same seeds); both written "mean ± SE" as the study's report writes them."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autodropout.core.atomic import atomic_write
from autodropout.core.checks import finite, finite_json
from autodropout.core.stats import Summary, fmt, interval, mean_se, paired, summarize, verdict
from autodropout.search_spaces import Pattern
from autodropout.viz import save_figure

REPORT_FILES = ("report.md", "report.json", "report.csv", "report.png")
#: Label of the transferred pattern in reports (not a valid baseline name).
PATTERN_METHOD = "pattern"


@dataclass
class RunRecord:
    """One trained model: validation and test metrics, or the error that stopped it."""

    method: str
    seed: int
    val: dict[str, float] | None
    test: dict[str, float] | None
    seconds: float
    error: str | None = None

    def scores(self, metric: str) -> tuple[float, float] | None:
        """The run's validation and test ``metric``, or ``None`` when it failed or either is not finite."""
        if self.error is not None:
            return None
        val, test = finite(self.val[metric]), finite(self.test[metric])
        return None if val is None or test is None else (val, test)


@dataclass
class MethodSummary:
    """One method's results: the main metric of each successful seed on validation and test (finite
    values), summarized by :func:`~autodropout.core.stats.summarize` (no standard error or interval with
    fewer than two successful runs)."""

    method: str
    regularization: str
    runs: int
    failed: int
    val: list[float]
    test: list[float]

    @property
    def val_summary(self) -> Summary:
        return summarize(self.val)

    @property
    def test_summary(self) -> Summary:
        return summarize(self.test)

    @property
    def val_mean(self) -> float | None:
        return self.val_summary.mean

    @property
    def test_mean(self) -> float | None:
        return self.test_summary.mean

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "regularization": self.regularization, "runs": self.runs,
                "failed": self.failed, "val": {**self.val_summary.to_json(), "values": self.val},
                "test": {**self.test_summary.to_json(), "values": self.test}}


@dataclass
class TransferReport:
    """The comparison: every run, a summary per method, and where the files went."""

    patterns_file: str
    rank: int
    target: str
    task_kind: str
    metric: str
    mode: str
    epochs: int
    seeds: list[int]
    mapping: str
    pattern: Pattern
    methods: list[MethodSummary]
    runs: list[RunRecord]
    parallel: bool
    seconds: float
    output: Path | None = None
    created: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    def best(self, split: str = "test") -> list[str]:
        """The method(s) with the best mean ``split`` metric (several on a tie, none without results)."""
        means = {m.method: getattr(m, f"{split}_mean") for m in self.methods}
        scored = [v for v in means.values() if v is not None]
        if not scored:
            return []
        top = max(scored) if self.mode == "max" else min(scored)
        return [name for name, v in means.items() if v is not None and math.isclose(v, top, rel_tol=1e-9)]

    def comparisons(self) -> list[tuple[str, Summary]]:
        """``(baseline, pattern - baseline)`` per baseline: the test metric's difference, paired by
        training seed over the seeds where both runs succeeded."""
        def test_by_seed(method: str) -> dict[int, float]:
            return {r.seed: r.scores(self.metric)[1] for r in self.runs
                    if r.method == method and r.scores(self.metric) is not None}

        pattern = test_by_seed(PATTERN_METHOD)
        return [(m.method, paired(pattern, test_by_seed(m.method))) for m in self.methods
                if m.method != PATTERN_METHOD]

    def markdown(self) -> str:
        better = "higher" if self.mode == "max" else "lower"
        lines = [
            f"# Transfer: {Path(self.patterns_file).name} (rank {self.rank}) -> {self.target}",
            "",
            f"- pattern: {self.mapping}",
            f"- target: {self.task_kind} task `{self.target}`, {self.epochs} epoch{'s' * (self.epochs != 1)}, seeds "
            f"{', '.join(map(str, self.seeds))}; metric {self.metric} ({better} is better)",
            f"- runs: {len(self.runs)} ({'in parallel on Ray' if self.parallel else 'one after the other'}), "
            f"{self.seconds:.0f}s",
            "",
            f"| method | val {self.metric} (mean ± SE) | test {self.metric} (mean ± SE) | 95% CI | val per seed "
            f"| test per seed | regularization |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in self.methods:
            failed = f" ({m.failed} failed)" if m.failed else ""
            lines.append(f"| {m.method}{failed} | {mean_se(m.val_summary)} | {mean_se(m.test_summary)} "
                         f"| {interval(m.test_summary)} | {_values(m.val)} | {_values(m.test)} | {m.regularization} |")
        comparisons = [(name, diff) for name, diff in self.comparisons() if diff.n]
        if comparisons:
            lines += ["", f"Paired test differences (pattern - baseline, same training seeds; {better} is better):", "",
                      "| arm | reference | difference (mean ± SE) | 95% CI | verdict |", "|---|---|---|---|---|"]
            lines += [f"| {PATTERN_METHOD} | {name} | {mean_se(diff, True)} | {interval(diff, True)} "
                      f"| {verdict(diff, self.mode)} |" for name, diff in comparisons]
        best = self.best("test")
        if len(best) == 1:
            lines += ["", f"Best mean test {self.metric}: **{best[0]}**."]
        elif best:
            lines += ["", f"Best mean test {self.metric}: a tie between {', '.join(best)}."]
        errors = [r for r in self.runs if r.error]
        if errors:
            lines += ["", "Failed runs:"] + [f"- {r.method} seed {r.seed}: {r.error}" for r in errors]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        """The Markdown table, plus where the files are."""
        text = self.markdown()
        if self.output is not None:
            text += f"\nwritten to {self.output}/: {', '.join(REPORT_FILES)}\n"
        return text.rstrip("\n")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "autodropout.commands.transfer", "version": 2, "created": self.created,
            "patterns_file": self.patterns_file, "rank": self.rank, "target": self.target,
            "task_kind": self.task_kind, "metric": self.metric, "mode": self.mode, "epochs": self.epochs,
            "seeds": self.seeds, "mapping": self.mapping, "pattern": self.pattern.to_json(),
            "parallel": self.parallel, "seconds": self.seconds,
            "methods": [m.to_json() for m in self.methods],
            "comparisons": [{"arm": PATTERN_METHOD, "reference": name, **diff.to_json()}
                            for name, diff in self.comparisons()],
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    def csv(self) -> str:
        keys = list(dict.fromkeys(k for r in self.runs for k in (r.val or {}) | (r.test or {})))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "seed", "status", "seconds"] + [f"val_{k}" for k in keys]
                        + [f"test_{k}" for k in keys])
        for r in self.runs:
            writer.writerow([r.method, r.seed, "error" if r.error else "done", f"{r.seconds:.2f}"]
                            + [(r.val or {}).get(k, "") for k in keys] + [(r.test or {}).get(k, "") for k in keys])
        return out.getvalue()


def write_report(report: TransferReport, folder: Path) -> None:
    """Write ``report.{md,json,csv,png}`` into ``folder`` (created), each file atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    report.output = folder
    atomic_write(folder / "report.json", json.dumps(finite_json(report.to_json()), indent=1, allow_nan=False) + "\n")
    atomic_write(folder / "report.csv", report.csv())
    atomic_write(folder / "report.md", report.markdown())
    save_figure(report_figure(report), folder / "report.png")


def report_figure(report: TransferReport) -> Figure:
    """Validation and test panels: one point per seed, a bar at each method's mean."""
    figure = Figure(figsize=(2.0 + 1.3 * len(report.methods), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    labels = [m.method for m in report.methods]
    for ax, split in zip(axes, ("val", "test")):
        for x, m in enumerate(report.methods):
            values = getattr(m, split)
            offsets = [0.0] if len(values) == 1 else [0.24 * (i / (len(values) - 1) - 0.5) for i in range(len(values))]
            ax.scatter([x + o for o in offsets], values, s=22, color=f"C{x}", alpha=0.8, zorder=3)
            if values:
                ax.hlines(summarize(values).mean, x - 0.3, x + 0.3, color=f"C{x}", linewidth=2.5, zorder=2)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{'validation' if split == 'val' else 'test'} {report.metric}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    better = "higher" if report.mode == "max" else "lower"
    axes[0].set_ylabel(f"{report.metric} ({better} is better)")
    figure.suptitle(f"{Path(report.patterns_file).name} -> {report.target} ({len(report.seeds)} seeds; bar = mean)",
                    fontsize=10)
    return figure


def _values(values: list[float]) -> str:
    return ", ".join(fmt(v) for v in values) or "-"
