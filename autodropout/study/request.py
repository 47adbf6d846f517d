"""A new study from what the user asked for: every check happens here, before anything is written."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodropout import regularizers
from autodropout.core.checks import is_int
from autodropout.core.errors import UserInputError
from autodropout.patterns import is_path, load_patterns, resolve
from autodropout.runs.experiment import ExperimentConfig, find_experiment
from autodropout.study.baselines import check_baselines, default_baselines, tunable_baselines
from autodropout.study.plan import (
    ARMS,
    EVAL_SEED_BASE,
    MAIN,
    WARM_ARMS,
    Imported,
    StudyError,
    StudyPlan,
    Target,
    all_arms,
    arm_label,
    target_key,
)
from autodropout.study.results import NONE
from autodropout.study.warm_start import check_warm, mask_baselines
from autodropout.tasks import task_class


@dataclass(frozen=True)
class StudyRequest:
    """What the user asked of a new study (``autodropout study`` and :func:`~autodropout.study.run_study`
    take these fields by name; see ``docs/study.md``). :func:`make_plan` checks every field.

    Attributes:
        experiment: experiment YAML file or preset name (the searched task).
        budget: trials per search and per tuned baseline (default: the experiment's ``search.trials``).
        search_seeds: independent searches per search arm (controller and training seed ``train.seed + k``).
        eval_seeds: training seeds of the final evaluation (``1000 + i``), at least 2.
        baselines: ``none`` and regularizer names (default: every applicable one, :mod:`~autodropout.study.baselines`).
        transfer_to: experiments (files or presets) the selected patterns are also scored on.
        concurrency: trials at once in searches and tunings (default: the experiment's ``search.concurrency``).
        transfer_from: pattern files or shipped pattern names (learned on other tasks) scored on this
            task beside its own arms.
        transfer_budget: trials per tuned baseline on each transfer target (default: ``budget``).
        arms: search arms among the registered searchers (:func:`~autodropout.study.plan.search_arms`:
            ``lstm``, ``random``, ``evolution``, ...) and their ``-warm`` arms (default: ``lstm``, ``random``,
            ``lstm-warm``, ``random-warm`` when a mask baseline is tuned, else the cold two).
        budgets: the budget curve's trial counts (``16, 48, 144``): the largest is ``budget``; at each
            smaller one every search seed's and tuned baseline's best so far is evaluated too
            (:mod:`autodropout.study.curves`).
    """

    experiment: str | Path
    budget: int | None = None
    search_seeds: int = 2
    eval_seeds: int = 5
    baselines: Sequence[str] | None = None
    transfer_to: Sequence[str | Path] = ()
    concurrency: int | None = None
    transfer_from: Sequence[str | Path] = ()
    transfer_budget: int | None = None
    arms: Sequence[str] | None = None
    budgets: Sequence[int] | None = None


def make_plan(experiment: str | Path, **options: Any) -> StudyPlan:
    """The plan of a study of ``experiment`` with the :class:`StudyRequest` fields ``options``."""
    return _plan(StudyRequest(experiment, **options))


def _plan(request: StudyRequest) -> StudyPlan:
    (experiment, budget, search_seeds, eval_seeds, baselines, transfer_to, concurrency, transfer_from,
     transfer_budget, arms, budgets) = (getattr(request, field.name) for field in dataclasses.fields(request))
    main = _study_experiment(find_experiment(experiment))
    budget, smaller = _budgets(budget, budgets)
    budget = main.search.trials if budget is None else budget
    _check_count("--budget", budget, 1, "trials per search arm and per tuned baseline")
    _check_count("--search-seeds", search_seeds, 1, "independent searches per search arm")
    _check_count("--eval-seeds", eval_seeds, 2, "training seeds of the final evaluation (2 at least, for an interval)")
    concurrency = main.search.concurrency if concurrency is None else concurrency
    _check_count("--concurrency", concurrency, 1, "trials at once")
    kind = main.task.kind
    chosen = check_baselines(list(baselines) if baselines is not None else default_baselines(kind), kind)
    targets = [Target(MAIN, main, tuple(chosen))]
    space = task_class(kind).space_type.kind
    for name in transfer_to:
        other = _study_experiment(find_experiment(name))
        other_kind = other.task.kind
        if task_class(other_kind).space_type.kind != space:
            raise StudyError(f"--transfer-to {name}: a {space} pattern (from a {kind} task) cannot go to a "
                             f"{other_kind} task, whose sites take {task_class(other_kind).space_type.kind} patterns")
        own = default_baselines(other_kind) if baselines is None else \
            [b for b in chosen if b in tunable_baselines(other_kind)]
        targets.append(Target(target_key(other.name, {t.key for t in targets}), other, tuple(own)))
    if transfer_budget is not None:
        if not transfer_to:
            raise StudyError("--transfer-budget: only with --transfer-to (it sets the trials per tuned baseline "
                             "on a transfer target)")
        _check_count("--transfer-budget", transfer_budget, 1, "trials per tuned baseline on a transfer target")
    # Every label a method of the evaluation has or could be mistaken for: arms, search seeds'
    # patterns, none and every regularizer's name.
    taken = set(all_arms()) | {arm_label(arm, k) for arm in all_arms() for k in range(search_seeds)} | {NONE}
    imports = _imports(transfer_from, kind, taken | set(regularizers.available()))
    seed = main.task.train.seed
    plan = StudyPlan(budget=budget, search_seeds=tuple(seed + k for k in range(search_seeds)),
                     eval_seeds=tuple(EVAL_SEED_BASE + i for i in range(eval_seeds)), targets=tuple(targets),
                     concurrency=concurrency, imports=imports, transfer_budget=transfer_budget, budgets=smaller)
    if arms is None:  # warm arms whenever there is a tuned mask baseline to start from
        return dataclasses.replace(plan, arms=ARMS + WARM_ARMS if mask_baselines(plan) else ARMS)
    plan = dataclasses.replace(plan, arms=_arms(arms))
    check_warm(plan)
    return plan


def _budgets(budget: int | None, budgets: Sequence[int] | None) -> tuple[int | None, tuple[int, ...]]:
    """``(budget, smaller budgets of the curve)`` from ``--budget`` and ``--budgets`` (whose largest is
    the budget; ``--budget``, if given too, must be that largest)."""
    if budgets is None:
        return budget, ()
    if not budgets or any(not is_int(b, 1) for b in budgets) or len(set(budgets)) < len(budgets):
        raise StudyError(f"--budgets: expected distinct trial counts of at least 1 (e.g. 16,48,144), "
                         f"got {','.join(map(str, budgets)) or 'none'}")
    ordered = sorted(budgets)
    if budget is not None and budget != ordered[-1]:
        raise StudyError(f"--budget {budget} and --budgets {','.join(map(str, budgets))}: the largest of --budgets "
                         "is the budget; give one of the two")
    return ordered[-1], tuple(ordered[:-1])


def _arms(names: Sequence[str]) -> tuple[str, ...]:
    valid = all_arms()  # every registered searcher, cold and warm
    unknown = [n for n in names if n not in valid]
    if unknown or not names or len(set(names)) < len(names):
        raise StudyError(f"--arms: expected some of {', '.join(valid)}, each once, got {','.join(names) or 'none'}")
    return tuple(n for n in valid if n in names)  # table order


def _imports(specs: Sequence[str | Path], kind: str, taken: set[str]) -> tuple[Imported, ...]:
    """Each ``--transfer-from`` pattern, read and checked now, and its label: a shipped pattern's name,
    or for a file ``EXPERIMENT-STEM`` (the experiment it was learned on, from its provenance, and the
    file's name: ``studies/X/patterns/lstm.json`` -> ``lm_transformer_quick-lstm``)."""
    space = task_class(kind).space_type.kind
    imports = []
    for spec in specs:
        try:
            file = resolve(spec)
            patterns = load_patterns(file)
        except UserInputError as exc:
            raise StudyError(f"--transfer-from {exc}") from None
        if patterns.space.kind != space:
            raise StudyError(f"--transfer-from {spec}: a {patterns.space.kind} pattern cannot go to a {kind} task, "
                             f"whose sites take {space} patterns")
        label = file.stem if not is_path(spec) else "-".join(
            part for part in (patterns.source.get("experiment"), file.stem) if part)
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        if label.lower() in {t.lower() for t in taken}:
            raise StudyError(f"--transfer-from {spec}: its label {label!r} is already taken by an arm, a baseline, "
                             "a regularizer or another --transfer-from (give each pattern once; rename a file)")
        taken.add(label)
        imports.append(Imported(label, str(spec), file.read_text()))
    return tuple(imports)


def _study_experiment(experiment: ExperimentConfig) -> ExperimentConfig:
    """The experiment as the study runs it: every unit keeps its Tune experiment in its own folder of
    the study (a shared ``search.storage_path`` would put every search in the same place), and the
    arms decide where a search starts (cold arms from scratch, warm arms at the best tuned mask baseline).
    A ``search.scheduler`` stays: the arms and the tuned baselines run under the same one, so they
    are charged the same epochs (the final evaluation always trains the whole schedule)."""
    return dataclasses.replace(experiment, search=dataclasses.replace(experiment.search, storage_path=None,
                                                                      start_from=None))


def _check_count(option: str, value: object, minimum: int, what: str) -> None:
    if not is_int(value, minimum):
        raise StudyError(f"{option}: expected at least {minimum} ({what}), got {value!r}")
