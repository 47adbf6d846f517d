"""A study's plan (``study.json``, versioned) and its folder: every path of it, in one place.

::

    study.json              the plan: budget, seeds, arms, baselines, targets (format autodropout.study)
    experiments/KEY.yaml    the resolved experiment of each target (main = the searched task)
    imported/LABEL.json     a copy of each pattern file given with --transfer-from (scored on the searched task)
    arms/ARM-sK/            one search run folder per search arm and search seed (autodropout search;
                            lstm-warm-s0 for a warm-started arm)
    tuned/KEY/BASELINE/     one Ray Tune run per tuned baseline and target (trials/ inside)
    eval/KEY/               the final evaluation of a target: a Tune grid of (method, seed) (grid/ inside)
    results/UNIT.json       one small result per finished unit (written atomically when it ends)
    walls.json              wall-clock seconds spent in each unit so far
    report.md, report.json, search_curves.png, test_metrics.png, best_pattern.png,
    patterns/lstm.json, patterns/random.json            the report (rebuilt from results/ alone)

A unit is one search (``search/lstm-s0``), one tuned baseline (``tune/main/dropout``) or one final
evaluation (``eval/main``). Units run in this order: the cold searches, the searched task's tunings, the
warm-started searches (they start from the best of those tunings, :mod:`autodropout.study.warm_start`),
the searched task's evaluation, then each transfer target's tunings and evaluation. The report reads
only ``study.json``, ``experiments/``, ``imported/`` and ``results/``, so a copy of those is a complete
record.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from autodropout.controller import searchers
from autodropout.core.atomic import atomic_write
from autodropout.core.errors import ConfigError, UserInputError
from autodropout.core.folders import check_new_folder
from autodropout.runs.experiment import ExperimentConfig, experiment_from_dict
from autodropout.search_spaces import PatternSet, load_patterns
from autodropout.study.baselines import tuning_domain
from autodropout.study.unit_results import UnitResult, result_from_json

FORMAT = "autodropout.study"
#: Version 2 added ``imports`` (``--transfer-from``) and ``transfer_budget``; version 1 files read as
#: having neither. Version 3 added the warm-started arms (an older reader would not know them).
VERSION = 3
READABLE = (1, 2, 3)
#: The cold search arms a study runs by default: the learned controller and random search in the same
#: space, from scratch.
ARMS = ("lstm", "random")
#: The warm-started arms: the searchers started from the best tuned mask baseline of the study
#: (``autodropout search --start-from``), run after the tunings; the default ones.
WARM = "-warm"
WARM_ARMS = tuple(arm + WARM for arm in ARMS)
#: The key of the searched task among the targets.
MAIN = "main"
#: Training seeds of the final evaluation: EVAL_SEED_BASE + i, the same for every arm (paired).
EVAL_SEED_BASE = 1000


class StudyError(UserInputError, ValueError):
    """A study request or a study folder is invalid; the message says why."""


@dataclass(frozen=True)
class Target:
    """A task the study scores on: ``main`` (searched) or a transfer target, with its baselines."""

    key: str
    experiment: ExperimentConfig
    baselines: tuple[str, ...]


@dataclass(frozen=True)
class Imported:
    """A pattern from elsewhere (``--transfer-from``: a shipped name or a pattern file) that the final
    evaluation of the searched task scores beside its own arms; ``source`` is what the user gave,
    ``text`` the pattern file itself, copied into the study folder (``imported/LABEL.json``)."""

    label: str
    source: str
    text: str = dataclasses.field(repr=False)


@dataclass(frozen=True)
class Unit:
    """One piece of work that ends with a result file (see the module docstring)."""

    kind: str  # "search" | "tune" | "eval"
    target: str
    name: str
    trials: int

    @property
    def id(self) -> str:
        return {"search": f"search/{self.name}", "tune": f"tune/{self.target}/{self.name}"}.get(
            self.kind, f"eval/{self.target}")


@dataclass(frozen=True)
class StudyPlan:
    budget: int
    search_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    targets: tuple[Target, ...]
    concurrency: int
    arms: tuple[str, ...] = ARMS
    imports: tuple[Imported, ...] = ()
    #: Trials per tuned baseline on a transfer target (``None``: ``budget``, as on the searched task).
    transfer_budget: int | None = None
    created: str = ""
    #: The smaller budgets of the budget curve (``--budgets``), ascending, each below ``budget``: at
    #: each, every search arm's and tuned baseline's best of its first that many trials is evaluated
    #: too (:mod:`autodropout.study.curves`); empty: ``budget`` alone.
    budgets: tuple[int, ...] = ()

    @property
    def main(self) -> Target:
        return self.targets[0]

    def target(self, key: str) -> Target:
        return next(t for t in self.targets if t.key == key)

    def tuning_budget(self, key: str, baseline: str | None = None) -> int:
        """Trials per tuned baseline on target ``key``; one for a ``baseline`` with nothing to tune
        (Concrete Dropout learns its rates in its one training run)."""
        if baseline is not None and not tuning_domain(baseline, self.target(key).experiment.task.kind):
            return 1
        return self.budget if key == MAIN or self.transfer_budget is None else self.transfer_budget

    @property
    def curve_budgets(self) -> tuple[int, ...]:
        """Every budget of the budget curve, ascending: :attr:`budgets`, then ``budget``."""
        return self.budgets + (self.budget,)

    def search_units(self) -> list[Unit]:
        """Every search unit, arm by arm in table order."""
        return [Unit("search", MAIN, arm_label(arm, k), self.budget)
                for arm in self.arms for k in range(len(self.search_seeds))]

    def imported_on(self, target: Target) -> list[str]:
        """The labels of the imported patterns scored on ``target`` (the searched task only)."""
        return [i.label for i in self.imports] if target.key == MAIN else []

    def arm_names(self, target: Target) -> list[str]:
        """``target``'s arms in table order: search arms, imported patterns, baselines."""
        return list(self.arms) + self.imported_on(target) + list(target.baselines)

    def eval_labels(self, target: Target) -> list[str]:
        """The methods of ``target``'s final evaluation, in table order (a search arm on the searched
        task has one method per search seed)."""
        if target.key != MAIN:
            return self.arm_names(target)
        searched = [arm_label(arm, k) for arm in self.arms for k in range(len(self.search_seeds))]
        return searched + self.imported_on(target) + list(target.baselines)

    def units(self) -> list[Unit]:
        """Every unit, in the order they run: searches, then per target its tuned baselines and its evaluation."""
        searches = self.search_units()
        units = [u for u in searches if not is_warm(arm_of(u.name))]
        for target in self.targets:
            units += [Unit("tune", target.key, b, self.tuning_budget(target.key, b))
                      for b in target.baselines if b != "none"]
            if target.key == MAIN:  # warm starts need the searched task's tunings
                units += [u for u in searches if is_warm(arm_of(u.name))]
            # At most one more method per search seed and tuned baseline at each smaller budget of the
            # curve (fewer when the best so far is the same trial at two budgets: the count is a bound).
            curve = len(self.budgets) * (len(self.search_units()) + sum(
                self.tuning_budget(MAIN, b) > 1 for b in target.baselines if b != "none")) if target.key == MAIN else 0
            units.append(Unit("eval", target.key, "eval",
                              (len(self.eval_labels(target)) + curve) * len(self.eval_seeds)))
        return units

    def unit(self, kind: str, target: str, name: str = "eval") -> Unit:
        """The unit of that kind, target and name (a search's name is its arm label, ``lstm-s0``)."""
        return next(u for u in self.units() if (u.kind, u.target, u.name) == (kind, target, name))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "created": self.created, "experiment": self.main.experiment.name,
                "budget": self.budget, "search_seeds": list(self.search_seeds), "eval_seeds": list(self.eval_seeds),
                "arms": list(self.arms), "concurrency": self.concurrency, "transfer_budget": self.transfer_budget,
                "budgets": list(self.budgets),
                "imports": [{"label": i.label, "source": i.source, "file": f"imported/{i.label}.json"}
                            for i in self.imports],
                "targets": [{"key": t.key, "experiment": t.experiment.name, "file": f"experiments/{t.key}.yaml",
                             "baselines": list(t.baselines)} for t in self.targets]}


def arm_label(arm: str, k: int) -> str:
    """``lstm-s0``: search arm ``arm`` with its ``k``-th search seed."""
    return f"{arm}-s{k}"


def search_arms() -> tuple[str, ...]:
    """Every cold arm a study can run (``--arms``): each registered searcher (``search.controller``,
    :mod:`autodropout.controller.searchers`), the default ones first."""
    return ARMS + tuple(name for name in searchers.available() if name not in ARMS)


def all_arms() -> tuple[str, ...]:
    """Every arm a study can run, in table order: the cold ones, then their warm-started twins."""
    cold = search_arms()
    return cold + tuple(arm + WARM for arm in cold)


def arm_of(label: str) -> str:
    """The arm of a search label: ``lstm-warm-s1`` -> ``lstm-warm``."""
    return label.rsplit("-s", 1)[0]


def is_warm(arm: str) -> bool:
    return arm.endswith(WARM)


def searcher_of(arm: str) -> str:
    """The searcher (``search.controller``) an arm runs: ``lstm-warm`` -> ``lstm``."""
    return arm.removesuffix(WARM)


def target_key(name: str, taken: set[str]) -> str:
    """A folder-safe key for a target experiment named ``name``, unique among ``taken``."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "target"
    if key == MAIN or key in taken:
        raise StudyError(f"--transfer-to {name!r}: the same target twice, or a target named like the searched task")
    return key


@dataclass(frozen=True)
class StudyDir:
    """A study folder and its plan (see the module docstring)."""

    path: Path
    plan: StudyPlan

    @property
    def plan_file(self) -> Path:
        return self.path / "study.json"

    def experiment_file(self, key: str) -> Path:
        return self.path / "experiments" / f"{key}.yaml"

    def import_file(self, imported: Imported) -> Path:
        return self.path / "imported" / f"{imported.label}.json"

    def read_import(self, imported: Imported) -> PatternSet:
        """The imported pattern file, read back from the study folder (strict validation)."""
        return load_patterns(self.import_file(imported))

    def unit_dir(self, unit: Unit) -> Path:
        if unit.kind == "search":
            return self.path / "arms" / unit.name
        if unit.kind == "tune":
            return self.path / "tuned" / unit.target / unit.name
        return self.path / "eval" / unit.target

    def result_file(self, unit: Unit) -> Path:
        return self.path / "results" / f"{unit.id}.json"

    @property
    def walls_file(self) -> Path:
        return self.path / "walls.json"

    def read_result(self, unit: Unit) -> UnitResult | None:
        """The unit's result (:mod:`autodropout.study.unit_results`), or ``None`` while it has not finished;
        a damaged result file is a :class:`~autodropout.core.errors.ConfigError` naming the file and the field."""
        path = self.result_file(unit)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: damaged unit result: {exc}") from None
        return result_from_json(unit.kind, data, str(path), self.plan.target(unit.target).experiment.task.train.epochs)

    def write_result(self, unit: Unit, result: UnitResult) -> Path:
        path = self.result_file(unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")

    # -- creating and opening --------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, plan: StudyPlan) -> StudyDir:
        path = Path(path)
        plan = dataclasses.replace(plan, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        study = cls(path, plan)
        (path / "experiments").mkdir(parents=True, exist_ok=True)
        for target in plan.targets:
            atomic_write(study.experiment_file(target.key), target.experiment.to_yaml())
        for entry in plan.imports:
            study.import_file(entry).parent.mkdir(exist_ok=True)
            atomic_write(study.import_file(entry), entry.text)
        atomic_write(study.plan_file, json.dumps(plan.to_json(), indent=1) + "\n")  # last: marks the folder a study
        return study

    @staticmethod
    def check_new(path: str | Path) -> Path:
        """``path`` if a new study can be created there (:func:`~autodropout.core.folders.check_new_folder`)."""
        return check_new_folder(path, StudyError, resumable="study.json", what="study")

    @classmethod
    def open(cls, path: str | Path) -> StudyDir:
        """Read a study folder back; anything missing or damaged is a :class:`StudyError`."""
        path = Path(path)
        if not (path / "study.json").is_file():
            raise StudyError(f"{path}: not a study folder (no study.json)")
        try:
            raw = json.loads((path / "study.json").read_text())
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise StudyError(f"{path}: study.json is not an autodropout study plan")
            if raw.get("version") not in READABLE:
                raise StudyError(f"{path}: study.json version {raw.get('version')!r} was written by another version "
                                 f"of autodropout (this one reads versions {', '.join(map(str, READABLE))})")
            targets = tuple(Target(t["key"], _read_experiment(path / t["file"]), tuple(t["baselines"]))
                            for t in raw["targets"])
            imports = tuple(Imported(str(i["label"]), str(i["source"]), (path / i["file"]).read_text())
                            for i in raw.get("imports", []))
            for imported in imports:  # damaged: say so now, not hours later at the final evaluation
                load_patterns(path / "imported" / f"{imported.label}.json")
            arms = tuple(raw["arms"])
            if not arms or any(arm not in all_arms() for arm in arms):
                raise StudyError(f"{path}: study.json arms {list(arms)} (expected some of {', '.join(all_arms())})")
            transfer_budget = raw.get("transfer_budget")
            budgets = tuple(int(b) for b in raw.get("budgets", []))  # absent before budget curves
            if any(not 0 < b < int(raw["budget"]) for b in budgets) or list(budgets) != sorted(set(budgets)):
                raise StudyError(f"{path}: study.json budgets {list(budgets)} (expected ascending, each from 1 "
                                 f"to below the budget {raw['budget']})")
            plan = StudyPlan(int(raw["budget"]), tuple(raw["search_seeds"]), tuple(raw["eval_seeds"]), targets,
                             int(raw["concurrency"]), arms, imports,
                             None if transfer_budget is None else int(transfer_budget), raw.get("created", ""),
                             budgets)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:  # a PatternError is one
            if isinstance(exc, StudyError):
                raise
            raise StudyError(f"{path}: damaged study folder: {exc}") from None
        return cls(path, plan)


def _read_experiment(path: Path) -> ExperimentConfig:
    try:
        return experiment_from_dict(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ConfigError) as exc:
        raise StudyError(f"{path}: damaged experiment file: {exc}") from None
