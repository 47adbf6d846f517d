"""``autodropout transfer``: train a new task with a learned pattern and with baselines, and compare.

Pham & Le (2021) transfer a Penn Treebank language model's pattern to WMT'14 En-Fr translation and a
WRN-28-2 pattern to WRN-28-10. Here any pattern file goes to any task of its kind:

1. the pattern is mapped onto the target's sites (:mod:`autodropout.patterns.mapping`: relative depth; a
   language-model pattern goes onto both the encoder and the decoder of a translation model, whose
   cross-attention follows each decoder layer's switches); a conv pattern for a Transformer task (or
   the reverse) is an error before any training;
2. the target trains with the pattern and with each baseline for ``seeds`` seeds
   (``train.seed + i``; the data split stays the same), on Ray when it is available (one Tune trial
   per (method, seed), the search's own trainable) and one after the other otherwise;
3. every model is evaluated on validation and test; the comparison (per method the mean ± standard
   error and 95% t-interval over seeds, every seed, and the pattern minus each baseline paired by
   seed: the statistics of ``autodropout study``, :mod:`autodropout.core.stats`) is printed and written to
   the output folder as ``report.md``, ``report.json``, ``report.csv`` (one row per run) and ``report.png``.

Baselines are ``none`` (nothing at the sites) or registry names with their default parameters;
``name:key=value;key=value`` sets parameters (values read as JSON, else strings), e.g.
``dropblock:p=0.1;block_size=3``. They go where each model puts a hand-designed regularizer (the
WideResNet's sites; a Transformer's attention output, FFN output and embeddings).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from autodropout import regularizers
from autodropout.commands.transfer_report import (
    PATTERN_METHOD,
    REPORT_FILES,
    MethodSummary,
    RunRecord,
    TransferReport,
    write_report,
)
from autodropout.core.checks import is_int
from autodropout.core.config import parse_assignments
from autodropout.core.errors import ConfigError, UserInputError
from autodropout.core.folders import check_new_folder
from autodropout.patterns import load_patterns
from autodropout.patterns.mapping import depth_map
from autodropout.runs import Trial
from autodropout.runs.experiment import ExperimentConfig, find_experiment
from autodropout.search_spaces import PatternSet
from autodropout.tasks import DivergedError, Regularization, Task, build_task, task_class
from autodropout.tasks.mapped_pattern import pattern_onto_task

__all__ = [
    "PATTERN_METHOD", "REPORT_FILES", "MethodSummary", "RunRecord", "TransferError", "TransferReport",
    "baseline_methods", "describe_mapping", "parse_baseline", "run_transfer", "valid_baselines", "write_report",
]

class TransferError(UserInputError, ValueError):
    """A transfer request is invalid (baselines, seeds, rank, output folder); the message says why."""


def parse_baseline(spec: str) -> tuple[str, str, dict]:
    """``"dropblock:p=0.1;block_size=3"`` -> ``(label, "dropblock", {"p": 0.1, "block_size": 3})``."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    try:
        params = parse_assignments([part.strip() for part in rest.split(";") if part.strip()], f"baseline {spec!r}",
                                   "name:key=value;key=value")
    except ConfigError as exc:
        raise TransferError(str(exc)) from None
    label = name if not params else f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return label, name, params


def valid_baselines(task_kind: str) -> list[str]:
    """``none`` and the registry names that fit the sites of ``task_kind``'s models (learned patterns,
    the entries that take a ``pattern``, are not hand-designed baselines)."""
    site = task_class(task_kind).site_kind
    return ["none"] + [n for n in regularizers.available()
                       if "pattern" not in regularizers.info(n).parameters and site in regularizers.info(n).input_kinds]


def baseline_methods(specs: Iterable[str], task_kind: str) -> list[tuple[str, Regularization]]:
    """Parse and check every baseline (building each regularizer once) before anything trains:
    ``(label, regularization)`` pairs in the given order."""
    valid = valid_baselines(task_kind)
    methods: list[tuple[str, Regularization]] = []
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
            except ValueError as exc:  # a bad value or parameter (RegularizerArgumentError); TypeErrors are bugs
                raise TransferError(f"baseline {spec!r}: {exc} (set parameters as name:key=value;key=value)") from None
            regularization = Regularization(name=name, params=params)
        if label in {PATTERN_METHOD, *(m[0] for m in methods)}:
            raise TransferError(f"baseline {label!r} is listed twice")
        methods.append((label, regularization))
    return methods


def run_transfer(
    patterns_file: str | os.PathLike,
    target: str | os.PathLike,
    rank: int = 1,
    baselines: Sequence[str] = ("none", "dropout"),
    seeds: int = 2,
    epochs: int | None = None,
    output: str | os.PathLike | None = None, threads: int | None = None,
    *,
    parallel: bool | None = None,
    progress: bool = True,
) -> TransferReport:
    """Train ``target`` with the transferred pattern and each baseline; write and return the report.

    Args:
        patterns_file: a pattern JSON file (from ``search`` or ``export``), or a shipped pattern's name.
        target: experiment YAML file or preset name of the target task.
        rank: which pattern of the file (1 = best).
        baselines: ``none`` and/or registry names, optionally ``name:key=value;...`` (module docstring).
        seeds: runs per method, with seeds ``train.seed + i``.
        epochs, threads: override the target's ``task.train.epochs`` / ``task.train.threads``.
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
    if not is_int(seeds, 1):
        raise TransferError(f"seeds: expected a positive number of seeds, got {seeds!r}")
    if epochs is not None and not is_int(epochs, 1):
        raise TransferError(f"epochs: expected a positive number of epochs, got {epochs!r}")
    experiment = find_experiment(target).with_train(epochs=epochs, threads=threads)
    methods = baseline_methods(baselines, experiment.task.kind)
    folder = Path(output) if output else Path("transfers") / f"{experiment.name}-{datetime.now():%Y%m%d-%H%M%S}"
    check_new_folder(folder, TransferError)

    task = build_task(experiment.task)
    patterns = load_patterns(patterns_file)  # read once: the trials and the report take it from here
    trials = _trials(task, experiment, patterns, rank, methods)
    seed_list = [experiment.task.train.seed + i for i in range(seeds)]
    use_ray = _ray_available() if parallel is None else parallel
    runs = (_run_parallel(task, experiment, trials, seed_list, progress) if use_ray
            else _run_sequential(task, trials, seed_list, progress))
    report = TransferReport(
        patterns_file=str(patterns_file), rank=rank, target=experiment.name, task_kind=experiment.task.kind,
        metric=task.metric, mode=task.mode, epochs=experiment.task.train.epochs, seeds=seed_list,
        mapping=describe_mapping(len(patterns.get(rank)), task),
        pattern=trials[0].regularization.pattern, methods=_summaries(trials, runs, task.metric), runs=runs,
        parallel=use_ray, seconds=time.perf_counter() - began,
    )
    write_report(report, folder)
    return report


def _trials(task: Task, experiment: ExperimentConfig, patterns: PatternSet, rank: int,
            methods: list[tuple[str, Regularization]]) -> list[Trial]:
    """The transferred pattern's trial, then one per baseline (seeds are set per run)."""
    ranks = [p.rank for p in patterns.patterns]
    if rank not in ranks:  # checked here: a KeyError from the mapping below is a bug, not a bad rank
        raise TransferError(f"rank: no pattern of rank {rank}; ranks in file: {ranks}")
    pattern, space = pattern_onto_task(task, patterns.get(rank), patterns.space)
    seed = experiment.task.train.seed
    return [Trial(experiment.task, Regularization(pattern=pattern), seed, space, PATTERN_METHOD)] + [
        Trial(experiment.task, regularization, seed, None, label) for label, regularization in methods]


def _summaries(trials: list[Trial], runs: list[RunRecord], metric: str) -> list[MethodSummary]:
    """Per method, its successful runs' metrics (a run whose metric is not finite counts as failed)."""
    summaries = []
    for trial in trials:
        mine = [r for r in runs if r.method == trial.label]
        ok = [scores for scores in (r.scores(metric) for r in mine) if scores is not None]
        summaries.append(MethodSummary(trial.label, trial.regularization.describe(), len(mine), len(mine) - len(ok),
                                       [val for val, _ in ok], [test for _, test in ok]))
    return summaries


def describe_mapping(source_sites: int, task: Task) -> str:
    """How the source sites were laid onto ``task``'s sites, e.g. for an LM -> translation transfer
    ``2 sites -> 4 sites: encoder layers <- source sites [0, 1], decoder layers <- [0, 1]``."""
    kind = task.space_type.kind
    target = task.num_sites
    head = f"{kind}, {source_sites} site{'s' * (source_sites != 1)} -> {target} site{'s' * (target != 1)}"
    if source_sites == target:
        return f"{head}, used as is"
    stacks = task.site_layout.stacks
    if len(stacks) == 1:
        return f"{head} by relative depth: source sites {depth_map(source_sites, target)}"
    n_enc, n_dec = stacks
    return (f"{head} by relative depth: encoder layers <- source sites {depth_map(source_sites, n_enc)}, "
            f"decoder layers <- {depth_map(source_sites, n_dec)} (cross-attention follows its decoder layer)")


def _run_sequential(task: Task, trials: list[Trial], seeds: list[int], progress: bool) -> list[RunRecord]:
    runs, total = [], len(trials) * len(seeds)
    for trial in trials:
        for seed in seeds:
            began = time.perf_counter()
            try:
                fit = task.fit(trial.regularization, seed=seed, progress=None if progress else False)
                record = RunRecord(trial.label, seed, dict(fit.final.val), task.evaluate(fit.model, "test"),
                                   time.perf_counter() - began)
            except DivergedError as exc:
                record = RunRecord(trial.label, seed, None, None, time.perf_counter() - began, str(exc))
            runs.append(record)
            if progress:
                _progress_line(len(runs), total, record, task.metric)
    return runs


def _run_parallel(task: Task, experiment: ExperimentConfig, trials: list[Trial], seeds: list[int],
                  progress: bool) -> list[RunRecord]:
    from autodropout.tune.parallel import run_grid

    by_label = {trial.label: trial for trial in trials}
    runs = []
    for cell in run_grid(task, trials, seeds, experiment.search.cpus_per_trial, experiment.search.gpus_per_trial,
                         progress):
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


def _ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None and (os.cpu_count() or 1) > 1
