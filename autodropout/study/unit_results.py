"""The result of one study unit (``results/UNIT.json``): a frozen dataclass per unit kind, JSON at the edge.

:mod:`autodropout.study.units` builds them, :meth:`StudyDir.write_result
<autodropout.study.plan.StudyDir.write_result>` writes :meth:`to_json`, :meth:`StudyDir.read_result
<autodropout.study.plan.StudyDir.read_result>` reads them back with :func:`result_from_json`, which
validates the file once (a damaged one is a :class:`~autodropout.core.errors.ConfigError` naming the file and
the field) and fills in what results written by older versions lack:

* ``cost.epochs`` (before studies took a trial scheduler): every trial ran its schedule, so
  trials x the experiment's epochs; ``cost.wall_s`` (set by the driver): 0;
* ``best_at`` (before budget curves): none; ``start`` and ``site_shapes`` of a search: none;
* ``tuner`` of a tuning (before the lattice tuner): :data:`RANDOM_TUNER`; ``domain``: empty;
* ``missing`` of an evaluation: none; a method's ``budget``: none (the study's own budget).

A unit's JSON holds the head (``format``, ``unit``, ``kind``, ``target``, ``name``, ``metric``, ``mode``,
``finished``), then its own fields, then ``cost``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from autodropout.core.checks import is_int, is_real
from autodropout.core.errors import ConfigError
from autodropout.runs import Trial

FORMAT = "autodropout.study.unit"
#: The tuner of the results that name none (studies from before the lattice tuner).
RANDOM_TUNER = "Ray Tune's random search (BasicVariantGenerator)"

_REQUIRED = object()


class _Fields:
    """One JSON object of a result file, read field by field: each wrong or missing field is one line
    naming the file and the field's path (``results/search/lstm-s0.json: best.reward: ...``)."""

    def __init__(self, data: Any, where: str, path: str = ""):
        self.where, self.path = where, path
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: {path or 'the result'}: expected an object, got {data!r}")
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, check: Callable[[Any], bool], expected: str, default: Any = _REQUIRED,
            optional: bool = False) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.where}: {self.name(key)}: missing (expected {expected})")
            return default
        value = self.data[key]
        if (value is None and optional) or check(value):
            return value
        raise ConfigError(f"{self.where}: {self.name(key)}: expected {expected}{' or null' * optional}, got {value!r}")

    def text(self, key: str, **kw: Any) -> str:
        return self.get(key, lambda v: isinstance(v, str), "a string", **kw)

    def integer(self, key: str, **kw: Any) -> int:
        return self.get(key, is_int, "an integer", **kw)

    def real(self, key: str, **kw: Any) -> float | None:
        value = self.get(key, is_real, "a finite number", **kw)
        return None if value is None else float(value)

    def mapping(self, key: str, **kw: Any) -> dict:
        return self.get(key, lambda v: isinstance(v, dict), "an object", **kw)

    def array(self, key: str, **kw: Any) -> list:
        return self.get(key, lambda v: isinstance(v, list), "a list", **kw)

    def each(self, key: str, read: Callable[[_Fields], Any]) -> list:
        """``read`` of every object in list ``key``."""
        return [read(_Fields(item, self.where, f"{self.name(key)}[{i}]")) for i, item in enumerate(self.array(key))]

    def nested(self, key: str, read: Callable[[_Fields], Any], optional: bool = False) -> Any:
        """``read`` of object ``key``; with ``optional``, ``None`` when it is null or absent."""
        value = self.get(key, lambda v: isinstance(v, dict), "an object", optional=optional,
                         **({"default": None} if optional else {}))
        return None if value is None else read(_Fields(value, self.where, self.name(key)))


@dataclass(frozen=True)
class Cost:
    """Trial-seconds, what they cost in CPU- and GPU-seconds, the epochs trained (below trials x schedule
    when a trial scheduler stopped some) and the wall-clock seconds spent in the unit."""

    trials: int
    trial_s: float
    cpu_s: float
    gpu_s: float
    epochs: int
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields, schedule: int | None) -> Cost:
        trials = f.integer("trials")
        epochs = f.integer("epochs", **({} if schedule is None else {"default": trials * schedule}))
        return cls(trials, f.real("trial_s"), f.real("cpu_s"), f.real("gpu_s"), epochs, f.real("wall_s", default=0.0))


@dataclass(frozen=True)
class Best:
    """A unit's best trial on validation: its id, reward, metric value and trial config (:class:`Trial`)."""

    trial_id: str
    reward: float
    value: float | None
    config: dict[str, Any]

    @property
    def trial(self) -> Trial:
        return Trial.from_config(self.config)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields) -> Best:
        return cls(f.text("trial_id"), f.real("reward"), f.real("value", optional=True), f.mapping("config"))


@dataclass(frozen=True)
class TrialRow:
    """One trial of a search or tuning, in sampling order: ``reward`` and ``value`` are ``None`` unless finite;
    ``params`` are a baseline's (``None`` for a pattern), ``tokens`` a pattern's."""

    index: int
    trial_id: str
    status: str
    reward: float | None
    value: float | None
    seconds: float
    params: dict[str, Any] | None
    tokens: tuple[int, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tokens": None if self.tokens is None else list(self.tokens)}

    @classmethod
    def read(cls, f: _Fields) -> TrialRow:
        tokens = f.get("tokens", lambda v: isinstance(v, list) and all(is_int(t) for t in v), "a list of tokens",
                       optional=True)
        return cls(f.integer("index"), f.text("trial_id"), f.text("status"), f.real("reward", optional=True),
                   f.real("value", optional=True), f.real("seconds"), f.mapping("params", optional=True),
                   None if tokens is None else tuple(tokens))


@dataclass(frozen=True)
class WarmStart:
    """Where a warm-started arm started (:mod:`autodropout.study.warm_start`): the ``--start-from`` spec,
    the baseline it comes from, that tuning's best validation reward, the unit ids of the tunings consulted."""

    spec: str
    baseline: str
    reward: float
    tunings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "baseline": self.baseline, "reward": self.reward, "tunings": list(self.tunings)}

    @classmethod
    def read(cls, f: _Fields) -> WarmStart:
        tunings = f.get("tunings", lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
                        "a list of unit ids")
        return cls(f.text("spec"), f.text("baseline"), f.real("reward"), tuple(tunings))


@dataclass(frozen=True)
class EvalMethod:
    """One method of a final evaluation (:mod:`autodropout.study.methods`): its label and arm, the search
    seed index ``k`` of a search arm's pattern, where it came from (a trial id, or an imported pattern's
    source) and its reward there, what it is (``describe()``, a baseline's parameters, a pattern's JSON),
    and the smaller budget of the curve it is the best at (``None``: the study's own budget)."""

    label: str
    arm: str
    search_seed: int | None
    source: str | None
    search_reward: float | None
    regularization: str
    params: dict[str, Any] | None
    pattern: list[Any] | dict[str, Any] | None
    budget: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.budget is None:  # only the curve's extra methods have one
            del out["budget"]
        return out

    @classmethod
    def read(cls, f: _Fields) -> EvalMethod:
        return cls(f.text("label"), f.text("arm"), f.integer("search_seed", default=None, optional=True),
                   f.text("source", optional=True), f.real("search_reward", optional=True), f.text("regularization"),
                   f.mapping("params", optional=True),
                   f.get("pattern", lambda v: isinstance(v, (list, dict)), "a pattern's JSON", optional=True),
                   f.integer("budget", default=None, optional=True))


@dataclass(frozen=True)
class Cell:
    """One (method, training seed) of a final evaluation: its main metric on validation and test (``None``
    unless finite), every metric of both splits when it trained, or the error that stopped it."""

    label: str
    seed: int
    seconds: float
    val: float | None
    test: float | None
    error: str | None
    val_metrics: dict[str, float | None] | None = None
    test_metrics: dict[str, float | None] | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if v is not None or k not in ("val_metrics", "test_metrics")}

    @classmethod
    def read(cls, f: _Fields) -> Cell:
        return cls(f.text("label"), f.integer("seed"), f.real("seconds"), f.real("val", optional=True),
                   f.real("test", optional=True), f.text("error", optional=True),
                   f.mapping("val_metrics", default=None, optional=True),
                   f.mapping("test_metrics", default=None, optional=True))


@dataclass(frozen=True)
class _UnitResult:
    """What every unit's result holds: the unit id, target, name, metric and mode, when it finished (ISO
    time) and its cost."""

    KIND: ClassVar[str]
    unit: str
    target: str
    name: str
    metric: str
    mode: str
    finished: str
    cost: Cost

    @property
    def kind(self) -> str:
        return self.KIND

    def with_wall(self, seconds: float) -> UnitResult:
        """The same result, with the wall-clock seconds the driver spent in the unit."""
        return dataclasses.replace(self, cost=dataclasses.replace(self.cost, wall_s=seconds))

    def _json(self, own: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "unit": self.unit, "kind": self.kind, "target": self.target, "name": self.name,
                "metric": self.metric, "mode": self.mode, "finished": self.finished, **own,
                "cost": self.cost.to_json()}

    @classmethod
    def _head(cls, f: _Fields, schedule: int | None) -> dict[str, Any]:
        """The constructor's arguments common to every kind, from ``f``."""
        if f.data.get("format") != FORMAT:
            raise ConfigError(f"{f.where}: format: expected {FORMAT!r}, got {f.data.get('format')!r}")
        if f.data.get("kind") != cls.KIND:
            raise ConfigError(f"{f.where}: kind: expected {cls.KIND!r}, got {f.data.get('kind')!r}")
        return dict(unit=f.text("unit"), target=f.text("target"), name=f.text("name"), metric=f.text("metric"),
                    mode=f.get("mode", lambda v: v in ("max", "min"), "'max' or 'min'"), finished=f.text("finished"),
                    cost=f.nested("cost", lambda c: Cost.read(c, schedule)))


@dataclass(frozen=True)
class TrialsResult(_UnitResult):
    """A search's or tuning's result: the training seed, every trial in sampling order, the best on
    validation, and under ``best_at`` the best of the first ``b`` trials for each smaller budget ``b`` of
    the curve (``None`` where none of them succeeded)."""

    seed: int
    trials: tuple[TrialRow, ...]
    best: Best | None
    best_at: dict[int, Best | None]

    def _trials_json(self, own: dict[str, Any]) -> dict[str, Any]:
        return self._json({**own, "seed": self.seed, "trials": [t.to_json() for t in self.trials],
                           "best": None if self.best is None else self.best.to_json(),
                           "best_at": {str(b): None if v is None else v.to_json() for b, v in self.best_at.items()}})

    @classmethod
    def _trials(cls, f: _Fields) -> dict[str, Any]:
        best_at = _Fields(f.mapping("best_at", default={}), f.where, "best_at")
        for key in best_at.data:
            if not key.isdigit():
                raise ConfigError(f"{f.where}: best_at: expected trial counts as keys, got {key!r}")
        return dict(seed=f.integer("seed"), trials=tuple(f.each("trials", TrialRow.read)),
                    best=f.nested("best", Best.read, optional=True),
                    best_at={int(b): best_at.nested(b, Best.read, optional=True) for b in best_at.data})


@dataclass(frozen=True)
class SearchResult(TrialsResult):
    """A search arm's result for one search seed: the arm, the search seed, where a warm-started arm
    started, and the searched model's site shapes."""

    KIND: ClassVar[str] = "search"
    arm: str
    search_seed: int
    start: WarmStart | None
    site_shapes: tuple[tuple[int, ...], ...] | None

    def to_json(self) -> dict[str, Any]:
        shapes = None if self.site_shapes is None else [list(s) for s in self.site_shapes]
        return self._trials_json({"arm": self.arm, "search_seed": self.search_seed,
                                  "start": None if self.start is None else self.start.to_json(),
                                  "site_shapes": shapes})

    @classmethod
    def from_json(cls, data: Any, where: str, schedule: int | None = None) -> SearchResult:
        f = _Fields(data, where)
        shapes = f.get("site_shapes", lambda v: isinstance(v, list) and all(
            isinstance(s, list) and all(is_int(n) for n in s) for s in v), "a list of shapes", default=None,
            optional=True)
        return cls(**cls._head(f, schedule), **cls._trials(f), arm=f.text("arm"), search_seed=f.integer("search_seed"),
                   start=f.nested("start", WarmStart.read, optional=True),
                   site_shapes=None if shapes is None else tuple(tuple(s) for s in shapes))


@dataclass(frozen=True)
class TuneResult(TrialsResult):
    """A tuned baseline's result on one target: the baseline, the domain it was tuned over and the tuner."""

    KIND: ClassVar[str] = "tune"
    baseline: str
    domain: dict[str, Any]
    tuner: str

    def to_json(self) -> dict[str, Any]:
        return self._trials_json({"baseline": self.baseline, "domain": self.domain, "tuner": self.tuner})

    @classmethod
    def from_json(cls, data: Any, where: str, schedule: int | None = None) -> TuneResult:
        f = _Fields(data, where)
        return cls(**cls._head(f, schedule), **cls._trials(f), baseline=f.text("baseline"),
                   domain=f.mapping("domain", default={}), tuner=f.text("tuner", default=RANDOM_TUNER))


@dataclass(frozen=True)
class EvalResult(_UnitResult):
    """A target's final evaluation: its methods in table order, a note per method that could not be
    evaluated, and one cell per (method, training seed)."""

    KIND: ClassVar[str] = "eval"
    methods: tuple[EvalMethod, ...]
    missing: tuple[str, ...]
    cells: tuple[Cell, ...]

    def to_json(self) -> dict[str, Any]:
        return self._json({"methods": [m.to_json() for m in self.methods], "missing": list(self.missing),
                           "cells": [c.to_json() for c in self.cells]})

    @classmethod
    def from_json(cls, data: Any, where: str, schedule: int | None = None) -> EvalResult:
        f = _Fields(data, where)
        missing = f.get("missing", lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v),
                        "a list of notes", default=[])
        return cls(**cls._head(f, schedule), methods=tuple(f.each("methods", EvalMethod.read)), missing=tuple(missing),
                   cells=tuple(f.each("cells", Cell.read)))


#: A unit's result, of any kind.
UnitResult = SearchResult | TuneResult | EvalResult
#: The result type of each unit kind.
RESULT_TYPES: dict[str, type[UnitResult]] = {"search": SearchResult, "tune": TuneResult, "eval": EvalResult}


def result_from_json(kind: str, data: Any, where: str, schedule: int | None = None) -> UnitResult:
    """The result of a unit of ``kind`` from its JSON ``data`` (read from ``where``), validated once;
    ``schedule`` is the epochs per trial of the unit's experiment (for results without ``cost.epochs``)."""
    return RESULT_TYPES[kind].from_json(data, where, schedule)
