"""``autodropout list``: the presets, the regularizers and the shipped patterns as aligned text tables.

Nothing here loads data or trains: site counts and shapes come from the preset's config
(:func:`autodropout.tasks.task_sites`), so the paper-scale presets are listed even where their data files
are missing (the table says where they are expected).
"""
from __future__ import annotations

import inspect
import textwrap
from collections.abc import Sequence
from pathlib import Path

from autodropout import patterns, regularizers
from autodropout.core.checks import finite
from autodropout.core.errors import UnknownNameError
from autodropout.core.stats import Summary, mean_se
from autodropout.runs.experiment import DEFAULT_EXPERIMENT, find_experiment, presets
from autodropout.tasks import TaskSites, task_sites

#: Seconds per search trial of the embedded presets, on one CPU thread and on one GPU: one trial =
#: training the preset's model for its epochs with a sampled pattern, validating after every epoch,
#: data already loaded. Measured with ``python benchmarks/trial_time.py [--device cuda]`` (median of 3
#: patterns) or as the median trial time of a study's search or tuning (:data:`TRIAL_TIME_SOURCE` says
#: which); re-measure and paste here when a preset changes. The study's time estimate reads them.
TRIAL_SECONDS: dict[str, dict[str, float]] = {
    "digits_wrn_quick": {"cpu": 7.8},
    "lm_transformer_quick": {"cpu": 19.3},
    "translation_numbers_quick": {"cpu": 96.0},
}
TRIAL_TIME_SOURCE = ("s/trial: one search trial (the preset's epochs and validations; data loaded once per "
                     "search). cpu: the 2-core development machine, idle, 1 torch thread, torch 2.13, "
                     "2026-12-07, version-3 spaces (median of 3 patterns of benchmarks/trial_time.py, one trial "
                     "at a time; a search runs 2 at a time, which the README's main command measures: 32 "
                     "trials of lm_transformer_quick in about 8 minutes); gpu: none measured "
                     "since the presets changed (an NVIDIA H200 ran the earlier ones); '-': not measured (the "
                     "paper-scale presets need their data files, and GPUs)")
WHAT = ("presets", "regularizers", "patterns")
#: Width at which the parameter column wraps.
PARAMETERS_WIDTH = 52


def listing(what: str | None = None) -> str:
    """The text of ``autodropout list [WHAT]``: both tables, or the one named by ``what``."""
    if what is not None and what not in WHAT:
        raise UnknownNameError(f"unknown list {what!r}; choose one of: {', '.join(WHAT)}")
    parts = []
    if what in (None, "presets"):
        parts.append(presets_table())
    if what in (None, "regularizers"):
        parts.append(regularizers_table())
    if what in (None, "patterns"):
        parts.append(patterns_table())
    return "\n\n".join(parts)


def presets_table() -> str:
    """One row per packaged preset: task, model, sites (count and sizes), seconds per trial, notes."""
    rows, notes = [], []
    for name in presets():
        task = find_experiment(name).task
        sites = task_sites(task)
        note = ["the default experiment"] if name == DEFAULT_EXPERIMENT else []
        if sites and sites.data_root and not Path(sites.data_root).exists():
            note.append(f"needs data at {sites.data_root} (not found)")
        seconds = TRIAL_SECONDS.get(name, {})
        rows.append([name, f"{task.kind}: {getattr(task, 'dataset', '?')}", sites.model if sites else "?",
                     sites_text(sites) if sites else "?",
                     *(f"{seconds[d]:g}" if d in seconds else "-" for d in ("cpu", "gpu"))])
        notes.append("; ".join(note))
    header = ["preset", "task", "model", "sites", "cpu s/trial", "gpu s/trial"]
    return "\n".join(["Presets (autodropout search NAME, autodropout train NAME):", table(header, rows, notes),
                      *textwrap.wrap(TRIAL_TIME_SOURCE, 100)])


def sites_text(sites: TaskSites) -> str:
    """``3: 16x16, 8x8, 4x4``; ``12: 4 at 32x32, 4 at 16x16, 4 at 8x8``; ``2: T 32 x C 64``."""
    runs: list[list] = []
    for shape in sites.shapes:
        if runs and runs[-1][0] == shape:
            runs[-1][1] += 1
        else:
            runs.append([shape, 1])
    parts = []
    for shape, count in runs:
        text = f"{shape[1]}x{shape[2]}" if sites.space == "conv" else f"T {shape[0]} x C {shape[1]}"
        parts.append(text if count == 1 or len(runs) == 1 else f"{count} at {text}")
    return f"{len(sites.shapes)}: {', '.join(parts)}"


def regularizers_table() -> str:
    """One row per registered regularizer: its constructor parameters with their defaults, and the
    activation layouts it accepts."""
    rows = []
    for name in regularizers.available():
        entry = regularizers.info(name)
        rows.append([name, textwrap.fill(parameters_text(entry.factory), PARAMETERS_WIDTH),
                     " ".join(entry.input_kinds)])
    return "\n".join([
        "Regularizers (autodropout train EXPERIMENT --regularizer NAME --param KEY=VALUE):",
        table(["name", "parameters (defaults)", "acts on"], rows),
        *textwrap.wrap("acts on: conv (B, C, H, W), seq (B, T, C), flat (B, N), heads (B, heads, T, d), layer: wraps "
                       "a layer. Papers and details: docs/regularizers.md", 100),
    ])


def parameters_text(factory: object) -> str:
    """``p=0.1, block_size=7``; a parameter without a default is ``NAME (required)``."""
    parts = []
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.default is inspect.Parameter.empty:
            parts.append(f"{parameter.name} (required)")
        else:
            parts.append(f"{parameter.name}={parameter.default!r}")
    return ", ".join(parts)


def patterns_table() -> str:
    """One row per shipped pattern: its space and sites, the study it comes from, and its test result
    (mean ± standard error over the evaluation seeds, and the paired difference against ``none``)."""
    head = "Shipped patterns (ad.load_patterns(NAME), autodropout show NAME, autodropout transfer NAME --to ...):"
    names = patterns.shipped()
    if not names:
        return f"{head}\n  none yet: autodropout study --publish STUDY_DIR NAME ships a study's best pattern"
    rows = []
    for name in names:
        loaded = patterns.load_patterns(name)
        study = loaded.source.get("study") or {}
        test = study.get("test") or {}
        versus = next((v for v in study.get("versus") or [] if v.get("reference") == "none"), {})
        rows.append([name, f"{loaded.space.kind}, {loaded.space.num_sites} sites", str(loaded.source.get("experiment")),
                     f"{study.get('arm', '?')}, {study.get('budget', '?')} trials, "
                     f"seed {study.get('search_seed', '?')}",
                     f"{study.get('metric', '?')} {mean_se(_summary(test))}", mean_se(_summary(versus), signed=True)])
    header = ["name", "space", "searched on", "found by", "test (mean ± SE)", "vs none (paired)"]
    return "\n".join([head, table(header, rows)])


def _summary(summary: dict) -> Summary:
    """A pattern file's ``source.study`` summary (``{"n", "mean", "se", "ci95"}``, written by a study) as a
    :class:`Summary` for :func:`mean_se`; a field that is no finite number reads as absent."""
    mean, se = finite(summary.get("mean")), finite(summary.get("se"))
    return Summary(0, mean, None, None if mean is None else se, None, None)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] | None = None) -> str:
    """Columns aligned on the widest cell, two spaces apart; cells may span several lines; a
    non-empty ``notes[i]`` is printed under row ``i``, indented, across the columns."""
    cells = [[str(c).split("\n") for c in row] for row in [list(header), *rows]]
    widths = [max(len(line) for row in cells for line in row[i]) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        for r in range(max(len(c) for c in row)):
            lines.append("  ".join((c[r] if r < len(c) else "").ljust(w) for c, w in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
        elif notes and notes[index - 1]:
            lines.append(f"    {notes[index - 1]}")
    return "\n".join(lines)
