"""The trial: what one Ray Tune trial trains, typed inside and a JSON-able dict at Ray's edge.

A trial is a task config, what goes at the model's sites (a searched or transferred pattern with
its space, a registry regularizer, or nothing), the training seed, and optionally a label (the
method's name in a transfer or a study). :meth:`Trial.to_config` is the dict Ray carries (the
searcher's suggestion, merged by Tune over the constant ``param_space``; a grid cell of a transfer)
and what each trial folder's ``params.json`` holds; :meth:`Trial.from_config` reads it back and
validates it once::

    {"task": {...}, "seed": 0,
     "space": {"kind": "conv", "num_sites": 3, "values": {...}}, "pattern": [...], "tokens": [...],
     "label": "pattern"}                                    # a pattern trial (label optional)
    {..., "space": {"kind": "transformer", "num_sites": 2, "values": {...}, "num_embeddings": 1, ...},
     "embeddings": [...], "pattern": [...], ...}            # with embedding sites (pattern format 3)
    {"task": {...}, "seed": 0, "regularizer": {"name": "dropout", "params": {"p": 0.1}}}
    {"task": {...}, "seed": 0, "regularizer": {"name": "none", "params": {}}}
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from autodropout.checks import is_int
from autodropout.config import to_dict
from autodropout.errors import ConfigError
from autodropout.search_spaces import Pattern, SearchSpace, space_from_config
from autodropout.tasks import Regularization, task_config_from_dict

_KEYS = {"task", "seed", "space", "pattern", "embeddings", "tokens", "regularizer", "label"}


@dataclass(frozen=True)
class Trial:
    """One training run of a search, transfer or study (see the module docstring).

    Attributes:
        task: a registered task config (e.g. ``VisionConfig``).
        regularization: what goes at the sites.
        seed: the training seed (initialisation, batch order, masks).
        space: the search space of ``regularization.pattern`` (``None`` without a pattern).
        label: the method's name in a transfer or study table.
    """

    task: Any
    regularization: Regularization
    seed: int
    space: SearchSpace | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if (self.regularization.pattern is None) != (self.space is None):
            raise ValueError("Trial: a pattern needs its space, and only a pattern has one")
        if not is_int(self.seed):
            raise ValueError(f"Trial: seed must be an int, got {self.seed!r}")

    @classmethod
    def for_tokens(cls, task: Any, space: SearchSpace, tokens: list[int], seed: int) -> Trial:
        """The trial of a searcher's suggestion: the pattern ``tokens`` decode to in ``space``."""
        return cls(task, Regularization(pattern=space.decode(tokens)), seed, space)

    @property
    def tokens(self) -> list[int] | None:
        """The pattern's tokens in its space (``None`` without a pattern)."""
        return None if self.space is None else self.space.encode(self.regularization.pattern)

    def with_seed(self, seed: int) -> Trial:
        return replace(self, seed=seed)

    def to_config(self) -> dict[str, Any]:
        """The JSON-able dict Ray carries (see the module docstring)."""
        config: dict[str, Any] = {"task": to_dict(self.task), "seed": self.seed}
        r = self.regularization
        if r.pattern is not None:
            config.update(space={"kind": self.space.kind, **self.space.config()}, pattern=r.pattern.to_json(),
                          tokens=self.tokens)
            if self.space.num_embeddings:
                config["embeddings"] = r.pattern.embeddings_to_json()
        else:
            config["regularizer"] = {"name": r.name or "none", "params": dict(r.params)}
        if self.label is not None:
            config["label"] = self.label
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Trial:
        """Read :meth:`to_config`'s dict back, validating every part once."""
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise ConfigError(f"trial config: unknown key {unknown[0]!r} (expected among {sorted(_KEYS)})")
        for key in ("task", "seed"):
            if key not in config:
                raise ConfigError(f"trial config: missing key {key!r}")
        task = task_config_from_dict(config["task"], "trial.task")
        label = config.get("label")
        if "pattern" in config:
            kind_and_config = dict(config["space"])
            space = space_from_config(kind_and_config.pop("kind"), kind_and_config)
            layers = tuple(space.layer_from_json(layer, where=f"site {i}: ") for i, layer in enumerate(config["pattern"]))
            embeddings = tuple(space.embedding_from_json(embedding, where=f"embedding {i}: ")
                               for i, embedding in enumerate(config.get("embeddings", [])))
            pattern = Pattern(space.kind, layers, embeddings)
            space.validate(pattern)
            return cls(task, Regularization(pattern=pattern), config["seed"], space, label)
        spec = config.get("regularizer")
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError("trial config: expected a 'pattern' or a 'regularizer': {name, params} entry")
        regularization = (Regularization.none() if spec["name"] == "none"
                          else Regularization(name=spec["name"], params=dict(spec.get("params") or {})))
        return cls(task, regularization, config["seed"], None, label)
