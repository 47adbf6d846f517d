"""``autodropout transfer``: train a new task with a learned pattern and with baselines, and compare.

Pham & Le (2021) transfer a Penn Treebank language model's pattern to WMT'14 En-Fr translation and a
WRN-28-2 pattern to WRN-28-10. Here any pattern file goes to any task of its kind:

1. the pattern is mapped onto the target's sites (:mod:`autodropout.mapping`: relative depth; a
   language-model pattern goes onto both the encoder and the decoder of a translation model, whose
   cross-attention follows each decoder layer's switches); a conv pattern for a Transformer task (or
   the reverse) is an error before any training;
2. the target trains with the pattern and with each baseline for ``seeds`` seeds
   (``train.seed + i``; the data split stays the same), on Ray when it is available (one Tune trial
   per (method, seed), the search's own trainable) and one after the other otherwise;
3. every model is evaluated on validation and test; the comparison (mean, spread = sample standard
   deviation, every seed) is printed and written to the output folder as ``report.md``,
   ``report.json``, ``report.csv`` (one row per run) and ``report.png``.

Baselines are ``none`` (nothing at the sites) or registry names with their default parameters;
``name:key=value;key=value`` sets parameters (values read as JSON, else strings), e.g.
``dropblock:p=0.1;block_size=3``. They go where each model puts a hand-designed regularizer (the
WideResNet's sites; a Transformer's attention output, FFN output and embeddings).
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autodropout import regularizers
from autodropout.atomic import atomic_write
from autodropout.config import ExperimentConfig, UserInputError, find_experiment, to_dict
from autodropout.mapping import depth_map
from autodropout.search_spaces import Pattern, load_patterns
from autodropout.tasks import DivergedError, Regularization, Task, build_task
from autodropout.training import pattern_for_task
from autodropout.viz import save_figure

#: Label of the transferred pattern in reports (not a valid baseline name).
PATTERN_METHOD = "pattern"
#: Registry entries that are learned patterns themselves, not hand-designed baselines.
PATTERN_ENTRIES = ("conv_pattern", "transformer_pattern")
#: Activation layout of each task kind's regularizer sites (registry ``input_kinds``).
SITE_KINDS = {"vision": "conv", "language_model": "seq", "translation": "seq"}
REPORT_FILES = ("report.md", "report.json", "report.csv", "report.png")


class TransferError(UserInputError, ValueError):
    """A transfer request is invalid (baselines, seeds, rank, output folder); the message says why."""


@dataclass(frozen=True)
class Method:
    """One row of the comparison: the transferred pattern or a baseline."""

    label: str
    regularization: Regularization

    def trial_entry(self) -> dict[str, Any]:
        """What a Tune trial config carries for this method (see ``workers.trainable``)."""
        r = self.regularization
        if r.pattern is not None:
            return {"pattern": r.pattern.to_json()}
        return {"regularizer": {"name": r.name or "none", "params": dict(r.params)}}


@dataclass
class RunRecord:
    """One trained model: validation and test metrics, or the error that stopped it."""

    method: str
    seed: int
    val: dict[str, float] | None
    test: dict[str, float] | None
    seconds: float
    error: str | None = None


@dataclass
class MethodSummary:
    """One method's results: the main metric of each successful seed on validation and test; the
    spread is the sample standard deviation (``None`` with fewer than two successful runs)."""

    method: str
    regularization: str
    runs: int
    failed: int
    val: list[float]
    test: list[float]

    @property
    def val_mean(self) -> float | None:
        return statistics.fmean(self.val) if self.val else None

    @property
    def test_mean(self) -> float | None:
        return statistics.fmean(self.test) if self.test else None

    @property
    def val_std(self) -> float | None:
        return statistics.stdev(self.val) if len(self.val) > 1 else None

    @property
    def test_std(self) -> float | None:
        return statistics.stdev(self.test) if len(self.test) > 1 else None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "regularization": self.regularization, "runs": self.runs,
                "failed": self.failed,
                "val": {"mean": self.val_mean, "std": self.val_std, "values": self.val},
                "test": {"mean": self.test_mean, "std": self.test_std, "values": self.test}}


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
            f"| method | val {self.metric} (mean ± std) | test {self.metric} (mean ± std) | val per seed "
            f"| test per seed | regularization |",
            "|---|---|---|---|---|---|",
        ]
        for m in self.methods:
            failed = f" ({m.failed} failed)" if m.failed else ""
            lines.append(
                f"| {m.method}{failed} | {_mean_std(m.val_mean, m.val_std)} | {_mean_std(m.test_mean, m.test_std)} "
                f"| {_values(m.val)} | {_values(m.test)} | {m.regularization} |"
            )
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
            "format": "autodropout.transfer", "version": 1, "created": self.created,
            "patterns_file": self.patterns_file, "rank": self.rank, "target": self.target,
            "task_kind": self.task_kind, "metric": self.metric, "mode": self.mode, "epochs": self.epochs,
            "seeds": self.seeds, "mapping": self.mapping, "pattern": self.pattern.to_json(),
            "parallel": self.parallel, "seconds": self.seconds,
            "methods": [m.to_json() for m in self.methods],
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    def csv(self) -> str:
        keys = list(dict.fromkeys(k for r in self.runs for k in (r.val or {}) | (r.test or {})))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "seed", "status", "seconds"] + [f"val_{k}" for k in keys] + [f"test_{k}" for k in keys])
        for r in self.runs:
            writer.writerow([r.method, r.seed, "error" if r.error else "done", f"{r.seconds:.2f}"]
                            + [(r.val or {}).get(k, "") for k in keys] + [(r.test or {}).get(k, "") for k in keys])
        return out.getvalue()


def parse_baseline(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"dropblock:p=0.1;block_size=3"`` -> ``(label, "dropblock", {"p": 0.1, "block_size": 3})``."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(";"))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TransferError(f"baseline {spec!r}: expected name:key=value;key=value, got {item!r}")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw.strip()
    label = name if not params else f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return label, name, params


def valid_baselines(task_kind: str) -> list[str]:
    """``none`` and the registry names that fit the sites of ``task_kind``'s models."""
    site = SITE_KINDS[task_kind]
    return ["none"] + [n for n in regularizers.available()
                       if n not in PATTERN_ENTRIES and site in regularizers.info(n).input_kinds]


def baseline_methods(specs: Iterable[str], task_kind: str) -> list[Method]:
    """Parse and check every baseline (building each regularizer once) before anything trains."""
    valid = valid_baselines(task_kind)
    methods: list[Method] = []
    for spec in specs:
        label, name, params = parse_baseline(spec)
        if name not in valid:
            raise TransferError(f"baseline {name!r} is not usable on a {task_kind} task; valid baselines: "
                                f"{', '.join(valid)}")
        if name == "none":
            if params:
                raise TransferError(f"baseline 'none' takes no parameters, got {spec!r}")
            regularization = Regularization.none()
        else:
            try:
                regularizers.create(name, **params)
            except (TypeError, ValueError) as exc:
                raise TransferError(f"baseline {spec!r}: {exc} (set parameters as name:key=value;key=value)") from None
            regularization = Regularization(name=name, params=params)
        if label in {PATTERN_METHOD, *(m.label for m in methods)}:
            raise TransferError(f"baseline {label!r} is listed twice")
        methods.append(Method(label, regularization))
    return methods


def run_transfer(
    patterns_file: str | os.PathLike,
    target: str | os.PathLike,
    rank: int = 1,
    baselines: Sequence[str] = ("none", "dropout"),
    seeds: int = 2,
    epochs: int | None = None,
    output: str | os.PathLike | None = None,
    *,
    parallel: bool | None = None,
    progress: bool = True,
) -> TransferReport:
    """Train ``target`` with the transferred pattern and each baseline; write and return the report.

    Args:
        patterns_file: a pattern JSON file (from ``search`` or ``export``).
        target: experiment YAML file or preset name of the target task.
        rank: which pattern of the file (1 = best).
        baselines: ``none`` and/or registry names, optionally ``name:key=value;...`` (module docstring).
        seeds: runs per method, with seeds ``train.seed + i``.
        epochs: overrides the target's ``task.train.epochs``.
        output: report folder (default ``transfers/TARGET-TIMESTAMP``); it must be new or empty.
        parallel: ``True`` runs on Ray, ``False`` one run after the other; ``None``: Ray when it is
            importable and the machine has more than one CPU.
        progress: print one line per finished run (and let training show its progress bars on a
            terminal).

    Raises:
        TransferError: bad baselines, seeds, epochs, rank or output folder.
        PatternError: the pattern does not fit the target (a conv pattern for a Transformer task,
            or the reverse), or the file is invalid. All checks happen before any training.
    """
    began = time.perf_counter()
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise TransferError(f"seeds: expected a positive number of seeds, got {seeds!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise TransferError(f"epochs: expected a positive number of epochs, got {epochs!r}")
    experiment = _with_epochs(find_experiment(target), epochs)
    methods = baseline_methods(baselines, experiment.task.kind)
    folder = Path(output) if output else Path("transfers") / f"{experiment.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TransferError(f"output: {folder} exists and is not an empty folder")

    task = build_task(experiment.task)
    patterns = load_patterns(patterns_file)
    try:
        pattern = pattern_for_task(task, patterns_file, rank)
    except KeyError as exc:
        raise TransferError(f"rank: {exc.args[0]}") from None
    methods.insert(0, Method(PATTERN_METHOD, Regularization(pattern=pattern)))
    seed_list = [experiment.task.train.seed + i for i in range(seeds)]
    use_ray = _ray_available() if parallel is None else parallel
    if use_ray:
        runs = _run_parallel(task, experiment, methods, seed_list, patterns.space.config()["values"], progress)
    else:
        runs = _run_sequential(task, methods, seed_list, progress)

    metric = task.metric
    summaries = []
    for method in methods:
        mine = [r for r in runs if r.method == method.label]
        ok = [r for r in mine if r.error is None]
        summaries.append(MethodSummary(method.label, method.regularization.describe(), len(mine),
                                       len(mine) - len(ok), [r.val[metric] for r in ok], [r.test[metric] for r in ok]))
    report = TransferReport(
        patterns_file=str(patterns_file), rank=rank, target=experiment.name, task_kind=experiment.task.kind,
        metric=metric, mode=task.mode, epochs=experiment.task.train.epochs, seeds=seed_list,
        mapping=describe_mapping(len(patterns.get(rank)), task), pattern=pattern, methods=summaries, runs=runs,
        parallel=use_ray, seconds=time.perf_counter() - began,
    )
    write_report(report, folder)
    return report


def describe_mapping(source_sites: int, task: Task) -> str:
    """How the source sites were laid onto ``task``'s sites, e.g. for an LM -> translation transfer
    ``2 sites -> 4 sites: encoder layers <- source sites [0, 1], decoder layers <- [0, 1]``."""
    kind = task.space_type.kind
    target = task.num_sites
    head = f"{kind}, {source_sites} site{'s' * (source_sites != 1)} -> {target} site{'s' * (target != 1)}"
    if source_sites == target:
        return f"{head}, used as is"
    stacks = getattr(task, "site_stacks", None)
    if stacks is None:
        return f"{head} by relative depth: source sites {depth_map(source_sites, target)}"
    n_enc, n_dec = stacks
    return (f"{head} by relative depth: encoder layers <- source sites {depth_map(source_sites, n_enc)}, "
            f"decoder layers <- {depth_map(source_sites, n_dec)} (cross-attention follows its decoder layer)")


def write_report(report: TransferReport, folder: Path) -> None:
    """Write ``report.{md,json,csv,png}`` into ``folder`` (created), each file atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    report.output = folder
    atomic_write(folder / "report.json", json.dumps(_finite(report.to_json()), indent=1, allow_nan=False) + "\n")
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
                ax.hlines(statistics.fmean(values), x - 0.3, x + 0.3, color=f"C{x}", linewidth=2.5, zorder=2)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{'validation' if split == 'val' else 'test'} {report.metric}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    better = "higher" if report.mode == "max" else "lower"
    axes[0].set_ylabel(f"{report.metric} ({better} is better)")
    figure.suptitle(f"{Path(report.patterns_file).name} -> {report.target} ({len(report.seeds)} seeds; bar = mean)",
                    fontsize=10)
    return figure


def _run_sequential(task: Task, methods: list[Method], seeds: list[int], progress: bool) -> list[RunRecord]:
    runs, total = [], len(methods) * len(seeds)
    for method in methods:
        for seed in seeds:
            began = time.perf_counter()
            try:
                fit = task.fit(method.regularization, seed=seed, progress=None if progress else False)
                record = RunRecord(method.label, seed, dict(fit.final.val), task.evaluate(fit.model, "test"),
                                   time.perf_counter() - began)
            except DivergedError as exc:
                record = RunRecord(method.label, seed, None, None, time.perf_counter() - began, str(exc))
            runs.append(record)
            if progress:
                _progress_line(len(runs), total, record, task.metric)
    return runs


def _run_parallel(task: Task, experiment: ExperimentConfig, methods: list[Method], seeds: list[int],
                  space_values: dict[str, Any], progress: bool) -> list[RunRecord]:
    from autodropout.workers.parallel import run_grid

    by_label = {m.label: m for m in methods}
    runs = []
    grid = run_grid(task, to_dict(experiment.task), {m.label: m.trial_entry() for m in methods}, seeds,
                    space_values, experiment.search.cpus_per_trial, experiment.search.gpus_per_trial, progress)
    for cell in grid:
        if cell.state is None:
            runs.append(RunRecord(cell.method, cell.seed, None, None, cell.seconds, cell.error))
            continue
        model = task.build_model(by_label[cell.method].regularization).to(task.device)
        model.load_state_dict(cell.state)
        runs.append(RunRecord(cell.method, cell.seed, task.evaluate(model, "val"), task.evaluate(model, "test"),
                              cell.seconds))
    return runs


def _progress_line(done: int, total: int, record: RunRecord, metric: str) -> None:
    result = (f"validation {metric} {record.val[metric]:.4g}, test {metric} {record.test[metric]:.4g}"
              if record.error is None else f"FAILED: {record.error}")
    print(f"[{done}/{total}] {record.method} seed {record.seed}: {result} ({record.seconds:.0f}s)",
          file=sys.stderr, flush=True)


def _with_epochs(experiment: ExperimentConfig, epochs: int | None) -> ExperimentConfig:
    if epochs is None:
        return experiment
    train = dataclasses.replace(experiment.task.train, epochs=epochs)
    return dataclasses.replace(experiment, task=dataclasses.replace(experiment.task, train=train))


def _ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None and (os.cpu_count() or 1) > 1


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values) or "-"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a diverged metric is written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
