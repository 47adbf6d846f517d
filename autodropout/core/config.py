"""Typed configuration: frozen dataclasses built from YAML/JSON mappings, with errors naming the key.

Every config object of the project (a task's config in its task module, ``TrainConfig``,
``SearchConfig`` and ``ExperimentConfig`` in :mod:`autodropout.runs.experiment`) is a small frozen
dataclass owned by the module that uses it; this module turns mappings into them and back.
Unknown keys and values of the wrong type are :class:`~autodropout.core.errors.ConfigError` naming the
key path (``task.train.lr``). It is a small dataclass walker rather than pydantic: the schemas are a
few flat dataclasses, and the messages must name the file and the YAML key.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

from autodropout.core.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], raw: Any, path: str) -> T:
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
        if (dataclasses.is_dataclass(hint) and isinstance(raw[f.name], Mapping)
                and f.default_factory is not dataclasses.MISSING):
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


def replace(config: T, path: str, **overrides: Any) -> T:
    """``config`` with ``overrides`` checked as if they had been written in the file at ``path``."""
    return from_dict(type(config), {**to_dict(config), **overrides}, path)


def parse_assignments(items: Sequence[str], what: str = "assignment", syntax: str = "KEY=VALUE") -> dict[str, Any]:
    """``["p=0.1", "per_channel=false"]`` -> ``{"p": 0.1, "per_channel": False}``: values are read
    as JSON, else kept as strings; errors say ``{what}: expected {syntax}, got ITEM``."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{what}: expected {syntax}, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw.strip()
    return params


def check_positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{name}: expected a positive value, got {getattr(obj, name)}")


def check_non_negative(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{name}: expected a value >= 0, got {getattr(obj, name)}")


def check_fraction(obj: Any, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (0 <= value < 1 if allow_zero else 0 < value < 1):
            raise ConfigError(f"{name}: expected a fraction in {'[' if allow_zero else '('}0, 1), got {value}")


def _convert(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, path)
    if origin in (Union, types.UnionType):
        return _convert_union(value, args, path)
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
        return _convert_float(value, path)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def _convert_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _convert(value, arg, path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")


def _convert_float(value: Any, path: str) -> float:
    # YAML reads 5e-4 as a string (YAML 1.1); accept numeric strings for floats only.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    return float(value)
