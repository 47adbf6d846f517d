"""Experiment files: ``name``, a ``task`` (owned by its task module) and a ``search`` section.

An experiment file is YAML::

    name: digits_wrn_quick
    task:   {kind: vision, dataset: digits, ...}      # -> the config dataclass of the task kind
    search: {trials: 24, concurrency: 2, ...}         # -> SearchConfig (optional)

Unknown keys and values of the wrong type are :class:`~autodropout.core.errors.ConfigError` naming the
key path (``task.lr``) and the file. The presets ship with the package (the repository's top-level
``experiments/`` folder is installed as ``autodropout/experiments``) and are found by name.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

import autodropout.controller.searchers as searcher_registry
from autodropout import regularizers
from autodropout.controller.config import (
    START_PROBABILITY,
    ControllerConfig,
    ControllerSettingError,
    check_start_probability,
)
from autodropout.core.checks import is_int
from autodropout.core.config import check_non_negative, check_positive, from_dict, parse_assignments, replace, to_dict
from autodropout.core.errors import ConfigError
from autodropout.tasks import Regularization, task_config_from_dict

DEFAULT_EXPERIMENT = "lm_transformer_quick"


#: ``search:`` keys of the learned controller's settings -> :class:`ControllerConfig` fields. The
#: settings are documented, checked and given their (measured) defaults by ControllerConfig alone.
#: They are flat keys of ``search`` because they were so before the searcher registry; every other
#: searcher's settings go under ``search.searchers.NAME`` (:meth:`SearchConfig.searcher_settings`).
CONTROLLER_KEYS = {
    "samples_per_update": "samples_per_update",
    "controller_lr": "lr",
    "controller_optimizer": "optimizer",
    "entropy_weight": "entropy_weight",
    "baseline_decay": "baseline_decay",
    "spread_decay": "spread_decay",
    "normalize_advantages": "normalize_advantages",
    "clip_ratio": "clip_ratio",
    "hidden": "hidden",
    "temperature": "temperature",
    "tanh_constant": "tanh_constant",
    "share_heads": "share_heads",
    "start_half_life": "start_half_life",
}


#: ``NAME:...`` that reads as a regularizer spec (so an unknown NAME is a typo, not a file name).
_REGULARIZER_SPEC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:.*=.*")


@dataclass(frozen=True)
class StartFrom:
    """Where a search starts (``search.start_from``, ``autodropout search --start-from SPEC``): either
    ``regularizer`` with ``params`` (the pattern of the space nearest to that regularizer placed where
    the baseline goes) or ``pattern``, a pattern file or a shipped pattern's name (its best pattern,
    mapped onto the task's sites by relative depth). ``spec`` is the text as given."""

    spec: str
    regularizer: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    pattern: str | None = None

    def regularization(self) -> Regularization:
        """The regularizer as the task places it (only for a regularizer start point)."""
        return Regularization(name=self.regularizer, params=dict(self.params))


def parse_start_from(spec: str) -> StartFrom:
    """``"dropout:p=0.135"`` (a registered regularizer, its parameters after ``:`` as ``KEY=VALUE``
    separated by commas, values read as JSON numbers or booleans, else strings), a bare regularizer
    name (its defaults), or else a pattern file path or shipped pattern name (whose existence is
    checked when the search starts, where the task is known). Regularizer parameters are checked
    here by building the regularizer once. Raises :class:`ConfigError` (without a key prefix: the
    caller names where the spec came from)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"expected NAME:KEY=VALUE,... (a regularizer) or a pattern file or shipped pattern name, "
                          f"got {spec!r}")
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    if name == "none":
        raise ConfigError("'none' is no start point; leave start_from out to search from scratch")
    if name not in regularizers.available():
        if _REGULARIZER_SPEC.fullmatch(spec):
            raise ConfigError(f"{spec!r}: unknown regularizer {name!r}; "
                              f"registered: {', '.join(regularizers.available())}")
        return StartFrom(spec, pattern=spec)
    items = [item.strip() for item in rest.split(",") if item.strip()]
    start = StartFrom(spec, regularizer=name, params=parse_assignments(items, repr(spec), "NAME:KEY=VALUE,KEY=VALUE"))
    start.regularization()  # unknown parameters and bad values fail here, naming the regularizer
    return start


@dataclass(frozen=True)
class ReevaluateConfig:
    """Top-k re-evaluation (docs/search.md, "Re-evaluating the best patterns"): once every trial has
    ended, the ``top_k`` best finished patterns are trained again with ``seeds`` more training seeds
    (the search's seed + 1, + 2, ...) on the same Ray machinery, and the exported patterns are ranked
    by their mean reward over all 1 + ``seeds`` training seeds, with the spread. ``top_k`` 0: off."""

    top_k: int = 0
    seeds: int = 2

    def __post_init__(self) -> None:
        check_non_negative(self, "top_k")
        check_positive(self, "seeds")


@dataclass(frozen=True)
class SearchConfig:
    """How the controller searches and how Ray runs the trials.

    ``controller`` is any registered searcher (:mod:`autodropout.controller.searchers`). The learned
    controller's settings (:data:`CONTROLLER_KEYS`) are :class:`ControllerConfig`'s, with its defaults;
    every other searcher's are a mapping under ``searchers``, by name (``searchers: {evolution:
    {population: 16}}``), checked against its settings dataclass even when another searcher runs (a
    study runs several from one file). :meth:`searcher_settings` hands them over in one piece.
    ``start_from`` (a :func:`parse_start_from` spec) makes every searcher start at that point and search
    around it, keeping each of its decisions with ``start_probability`` at first (docs/search.md).
    """

    trials: int = 16
    concurrency: int = 2
    #: The searcher, a name of :func:`autodropout.controller.searchers.available`: ``lstm`` (the paper's
    #: REINFORCE controller, the default), ``random`` search, ``evolution`` (regularized evolution), ...
    controller: str = "lstm"
    samples_per_update: int = ControllerConfig.samples_per_update
    controller_lr: float = ControllerConfig.lr
    controller_optimizer: Literal["adam", "sgd"] = ControllerConfig.optimizer
    entropy_weight: float = ControllerConfig.entropy_weight
    baseline_decay: float = ControllerConfig.baseline_decay
    spread_decay: float = ControllerConfig.spread_decay
    normalize_advantages: bool = ControllerConfig.normalize_advantages
    clip_ratio: float | None = ControllerConfig.clip_ratio
    hidden: int = ControllerConfig.hidden
    temperature: float = ControllerConfig.temperature
    tanh_constant: float | None = ControllerConfig.tanh_constant
    share_heads: bool = ControllerConfig.share_heads
    start_half_life: float = ControllerConfig.start_half_life
    #: Settings of the searchers other than ``lstm``, by name: ``{evolution: {population: 16, sample_size: 8}}``.
    searchers: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_k: int = 5
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    storage_path: str | None = None
    #: On a cluster of several nodes, check before the trials start that every node that can run one
    #: sees the trials' storage (docs/search.md, "On a cluster"); ``false`` skips the check.
    check_storage: bool = True
    values: dict[str, list[Any]] = field(default_factory=dict)
    #: The value sets of a Transformer's embedding decisions (docs/search_spaces.md), like ``values``.
    embedding_values: dict[str, list[Any]] = field(default_factory=dict)
    #: Trial checkpoints (the full training state) kept once a trial has ended: ``best`` keeps those
    #: of the ``top_k`` best completed trials, ``none`` keeps none, ``all`` keeps every one.
    keep_checkpoints: Literal["none", "best", "all"] = "best"
    start_from: str | None = None
    start_probability: float = START_PROBABILITY
    #: A trial scheduler (docs/search.md, "Under a trial scheduler"): ``none``, or ``asha``, Ray's
    #: ASHAScheduler on the trials' ``epoch``: a trial goes on past a rung (``grace_period`` epochs, then
    #: ``reduction_factor`` times as many, below the schedule's end) only if its reward there is in the
    #: top 1/``reduction_factor`` of the trials that reached that rung.
    reevaluate: ReevaluateConfig = field(default_factory=ReevaluateConfig)
    scheduler: Literal["none", "asha"] = "none"
    #: Epochs before ASHA's first rung; ``None``: 3/4 of ``task.train.epochs``, rounded up (measured:
    #: earlier rewards rank the LM preset's patterns the wrong way round).
    grace_period: int | None = None
    reduction_factor: int = 3

    def __post_init__(self) -> None:
        check_positive(self, "trials", "concurrency", "top_k")
        if self.grace_period is not None:
            check_positive(self, "grace_period")
        if not is_int(self.reduction_factor, minimum=2):
            raise ConfigError(f"reduction_factor: expected an int of at least 2, got {self.reduction_factor!r}")
        check_non_negative(self, "cpus_per_trial", "gpus_per_trial", "max_failures")
        if self.cpus_per_trial == 0 and self.gpus_per_trial == 0:
            raise ConfigError("cpus_per_trial: a trial needs at least some CPU or GPU")
        try:
            self.controller_config()
        except ControllerSettingError as exc:  # named as the user wrote it: controller_lr, not lr
            key = {field: key for key, field in CONTROLLER_KEYS.items()}[exc.setting]
            raise ConfigError(f"{key}: {exc.problem}") from None
        self._check_searchers()
        try:
            check_start_probability(self.start_probability)
        except ControllerSettingError as exc:
            raise ConfigError(f"start_probability: {exc.problem}") from None
        self.start_point()

    def start_point(self) -> StartFrom | None:
        """``start_from`` parsed (``None``: a search from scratch); a bad spec is a ConfigError naming the key."""
        if self.start_from is None:
            return None
        try:
            return parse_start_from(self.start_from)
        except ConfigError as exc:
            raise ConfigError(f"start_from: {exc}") from None

    def first_rung(self, epochs: int) -> int:
        """The epoch of ASHA's first rung for a schedule of ``epochs`` (``grace_period`` or its default)."""
        return self.grace_period if self.grace_period is not None else math.ceil(0.75 * epochs)

    def _check_searchers(self) -> None:
        """``controller`` is a registered searcher, and every ``searchers`` entry is one whose settings
        are valid (ConfigError naming the key, e.g. ``searchers.evolution.population``)."""
        if self.controller not in searcher_registry.available():
            raise ConfigError(f"controller: unknown searcher {self.controller!r}; "
                              f"valid names: {', '.join(searcher_registry.available())}")
        for name in self.searchers:
            if name not in searcher_registry.available():
                raise ConfigError(f"searchers.{name}: unknown searcher; "
                                  f"valid names: {', '.join(searcher_registry.available())}")
            if name == "lstm":
                raise ConfigError(f"searchers.lstm: the LSTM controller's settings are search keys of their own "
                                  f"({', '.join(CONTROLLER_KEYS)})")
            self.searcher_settings(name)
        self.searcher_settings()

    def searcher_settings(self, name: str | None = None) -> Any:
        """The settings of searcher ``name`` (default: ``controller``), its registered dataclass (``None``
        for a searcher without settings): :meth:`controller_config` for ``lstm``, else ``searchers[name]``
        over the dataclass's defaults."""
        name = self.controller if name is None else name
        if name == "lstm":
            return self.controller_config()
        return searcher_registry.parse_settings(name, self.searchers.get(name, {}), f"searchers.{name}")

    def controller_config(self) -> ControllerConfig:
        """The learned controller's settings (the keys of :data:`CONTROLLER_KEYS`)."""
        return ControllerConfig(**{field: getattr(self, key) for key, field in CONTROLLER_KEYS.items()})


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment file."""

    name: str
    task: Any
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        # train.threads 0 means the trial's CPUs: filled in here, so that a search's trials, `train`
        # and both transfer paths all train with the same number of threads (and identical models).
        train = self.task.train
        if self.search.scheduler != "none" and not self.search.first_rung(train.epochs) < train.epochs:
            raise ConfigError(f"search.grace_period: expected fewer epochs than task.train.epochs ({train.epochs}), "
                              f"got {self.search.first_rung(train.epochs)}")
        if train.threads == 0:
            threads = max(1, math.floor(self.search.cpus_per_trial))
            object.__setattr__(self, "task", dataclasses.replace(self.task, train=dataclasses.replace(
                train, threads=threads)))

    def with_train(self, **overrides: Any) -> ExperimentConfig:
        """This experiment with ``task.train`` fields replaced (checked like the file's own values);
        ``None`` values leave a field as it is."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        train = replace(self.task.train, "task.train", **given)
        return dataclasses.replace(self, task=dataclasses.replace(self.task, train=train))

    def with_search(self, **overrides: Any) -> ExperimentConfig:
        """This experiment with ``search`` fields replaced; ``None`` values are left out."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, search=replace(self.search, "search", **given)) if given else self

    def to_yaml(self) -> str:
        """The experiment as an experiment file (``experiment_from_dict`` reads it back)."""
        return yaml.safe_dump(_plain(to_dict(self)), sort_keys=False)


def experiments_dir() -> Path:
    """The folder of the packaged presets: installed as ``autodropout/experiments``; in a source
    checkout, the repository's top-level ``experiments/``."""
    package = Path(__file__).resolve().parents[1]  # autodropout/
    installed = package / "experiments"
    return installed if installed.is_dir() else package.parent / "experiments"


def presets() -> list[str]:
    """Names of the experiment files that ship with the package."""
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def find_experiment(name_or_path: str | Path) -> ExperimentConfig:
    """Load a YAML file, or a packaged preset by name (``digits_wrn_quick``); errors list presets."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_experiment(path)
    preset = experiments_dir() / f"{name_or_path}.yaml"
    if preset.exists():
        return load_experiment(preset)
    raise ConfigError(f"{name_or_path}: neither an experiment file nor a preset; presets: {', '.join(presets())}")


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not an experiment file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_where(exc)}: {getattr(exc, 'problem', None) or exc}") from None
    try:
        return experiment_from_dict(raw, default_name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def experiment_from_dict(raw: Any, default_name: str = "experiment") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a parsed experiment file."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}")
    raw = {"name": default_name, **raw}
    unknown = sorted(set(raw) - {"name", "task", "search"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (expected name, task, search)")
    if "task" not in raw:
        raise ConfigError("missing key 'task'")
    name = raw["name"]
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}")
    return ExperimentConfig(name=name, task=task_config_from_dict(raw["task"], "task"),
                            search=from_dict(SearchConfig, raw.get("search") or {}, "search"))


def _where(exc: yaml.YAMLError) -> str:
    """`` at line L, column C`` of a YAML error (one line; PyYAML's own message quotes the text)."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _plain(value: Any) -> Any:
    """YAML-safe: non-finite floats (never valid in a config) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
