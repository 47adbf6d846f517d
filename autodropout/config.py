"""Typed, validated experiment configuration.

An experiment file is YAML with three sections::

    name: digits_wrn_quick
    task:   {kind: vision, dataset: digits, ...}      # -> VisionConfig / LanguageModelConfig / TranslationConfig
    search: {trials: 24, concurrency: 2, ...}         # -> SearchConfig (optional)

Unknown keys and values of the wrong type are errors that name the key path (``task.lr``). The
loader is a small hand-written dataclass walker rather than pydantic: the schema is a few flat
dataclasses, and error messages must name the file and the YAML key, which this does in 60 lines.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml

from autodropout.errors import ConfigError, UserInputError  # noqa: F401 - re-exported


# -- tasks -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every task."""

    epochs: int = 3
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    max_batches_per_epoch: int = 0

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size")
        _non_negative(self, "lr", "momentum", "weight_decay", "warmup_epochs", "grad_clip", "max_batches_per_epoch")


@dataclass(frozen=True)
class VisionConfig:
    """Image classification with a WideResNet (``kind: vision``)."""

    kind: Literal["vision"] = "vision"
    dataset: Literal["digits", "cifar10", "cifar100"] = "digits"
    root: str | None = None
    image_size: int = 16
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: bool = True
    depth: int = 10
    width: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _positive(self, "image_size", "depth", "width")
        if (self.depth - 4) % 6:
            raise ConfigError(f"depth: WideResNet depth must be 6n+4 (10, 16, 22, 28, ...), got {self.depth}")
        if self.dataset != "digits" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder of its python batches)")
        _fraction(self, "val_fraction", "test_fraction")


@dataclass(frozen=True)
class LanguageModelConfig:
    """Word-level language modelling with a causal Transformer (``kind: language_model``)."""

    kind: Literal["language_model"] = "language_model"
    dataset: Literal["embedded", "ptb", "wikitext2"] = "embedded"
    root: str | None = None
    vocab_size: int = 5000
    max_tokens: int = 0
    bptt: int = 32
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0
    reward_constant: float = 80.0
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.01, batch_size=32, grad_clip=1.0)
    )

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "bptt", "d_model", "n_layers", "n_heads", "reward_constant")
        _non_negative(self, "max_tokens", "d_ff")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.dataset != "embedded" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder with its token files)")


@dataclass(frozen=True)
class TranslationConfig:
    """Sequence-to-sequence translation with a Transformer (``kind: translation``)."""

    kind: Literal["translation"] = "translation"
    dataset: Literal["numbers", "parallel"] = "numbers"
    root: str | None = None
    src_lang: str = "en"
    tgt_lang: str = "fr"
    vocab_size: int = 8000
    max_number: int = 9999
    n_train: int = 3000
    n_val: int = 300
    n_test: int = 300
    max_len: int = 32
    d_model: int = 64
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0
    beam_size: int = 1
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.01, batch_size=64, grad_clip=1.0)
    )

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "max_number", "n_train", "n_val", "n_test", "max_len", "d_model",
                  "n_enc_layers", "n_dec_layers", "n_heads", "beam_size")
        _non_negative(self, "d_ff")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.dataset != "numbers" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder with train/valid/test files)")


TaskConfig = Union[VisionConfig, LanguageModelConfig, TranslationConfig]
TASK_KINDS: dict[str, type] = {
    "vision": VisionConfig,
    "language_model": LanguageModelConfig,
    "translation": TranslationConfig,
}


# -- search ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchConfig:
    """How the controller searches and how Ray runs the trials."""

    trials: int = 16
    concurrency: int = 2
    controller: Literal["lstm", "random"] = "lstm"
    samples_per_update: int = 2
    controller_lr: float = 0.01
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.8
    temperature: float = 1.0
    tanh_constant: float = 2.5
    hidden: int = 64
    top_k: int = 5
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    storage_path: str | None = None
    values: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _positive(self, "trials", "concurrency", "samples_per_update", "top_k", "hidden")
        _non_negative(self, "controller_lr", "entropy_weight", "cpus_per_trial", "gpus_per_trial", "max_failures")
        if self.cpus_per_trial == 0 and self.gpus_per_trial == 0:
            raise ConfigError("cpus_per_trial: a trial needs at least some CPU or GPU")
        if not 0 <= self.baseline_decay < 1:
            raise ConfigError(f"baseline_decay: expected a value in [0, 1), got {self.baseline_decay}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment file."""

    name: str
    task: TaskConfig
    search: SearchConfig = field(default_factory=SearchConfig)


# -- loading -----------------------------------------------------------------------------------
#: Embedded experiment presets ship inside the package so an installed ``autodropout`` finds them.
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
DEFAULT_EXPERIMENT = "digits_wrn_quick"


def presets() -> list[str]:
    """Names of the experiment files that ship with the package."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def find_experiment(name_or_path: str | Path) -> ExperimentConfig:
    """Load a YAML file, or a packaged preset by name (``digits_wrn_quick``); errors list presets."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_experiment(path)
    preset = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
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
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return experiment_from_dict(raw, default_name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def experiment_from_dict(raw: Any, default_name: str = "experiment") -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}")
    raw = {"name": default_name, **raw}
    unknown = sorted(set(raw) - {"name", "task", "search"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (expected name, task, search)")
    if "task" not in raw:
        raise ConfigError("missing key 'task'")
    return ExperimentConfig(
        name=_convert(raw["name"], str, "name"),
        task=task_from_dict(raw["task"], "task"),
        search=from_dict(SearchConfig, raw.get("search") or {}, "search"),
    )


def task_from_dict(raw: Any, path: str = "task") -> TaskConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in TASK_KINDS:
        raise ConfigError(f"{path}.kind: expected one of {sorted(TASK_KINDS)}, got {kind!r}")
    return from_dict(TASK_KINDS[kind], raw, path)


def from_dict(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types; errors name ``path.key``.

    A nested dataclass given partially is merged over the field's own default, so a language
    model's ``train: {epochs: 2}`` keeps the language model's optimiser defaults.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key (valid keys: {', '.join(names)})")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        hint, key = hints[f.name], f"{path}.{f.name}"
        if dataclasses.is_dataclass(hint) and isinstance(raw[f.name], Mapping) and f.default_factory is not dataclasses.MISSING:
            nested = from_dict(hint, raw[f.name], key)
            explicit = {k: getattr(nested, k) for k in raw[f.name]}
            values[f.name] = dataclasses.replace(f.default_factory(), **explicit)
        else:
            values[f.name] = _convert(raw[f.name], hint, key)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc}") from None


def to_dict(config: Any) -> Any:
    """Dataclass config -> plain dict (for YAML/JSON dumps and Ray configs)."""
    return dataclasses.asdict(config)


def _convert(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        # YAML reads 5e-4 as a string (YAML 1.1); accept numeric strings for floats only.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{name}: expected a positive value, got {getattr(obj, name)}")


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{name}: expected a value >= 0, got {getattr(obj, name)}")


def _fraction(obj: Any, *names: str) -> None:
    for name in names:
        if not 0 < getattr(obj, name) < 1:
            raise ConfigError(f"{name}: expected a fraction in (0, 1), got {getattr(obj, name)}")
