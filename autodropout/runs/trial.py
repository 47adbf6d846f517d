"""The trial: what one Ray Tune trial trains, typed inside and a JSON-able dict at Ray's edge.

A trial is a task config, what goes at the model's sites (a searched or transferred pattern with
its space, a registry regularizer, or nothing), the training seed, and optionally a label (the
method's name in a transfer or a study). :meth:`Trial.to_config` is the dict Ray carries (the
searcher's suggestion, merged by Tune over the constant ``param_space``; a grid cell of a transfer)
and what each trial folder's ``params.json`` holds; :meth:`Trial.from_config` reads it back, the one
place where a worker's pattern is validated (Ray's edge is JSON)::

    {"task": {...}, "seed": 0,
     "space": "conv", "space_config": {"num_sites": 3, "values": {...}}, "pattern": [...],
     "label": "pattern"}                                    # a pattern trial (label optional)
    {..., "space": "transformer", "space_config": {"num_sites": 2, "values": {...}, "num_embeddings": 1, ...},
     "embeddings": [...], "pattern": [...], ...}            # with embedding sites (pattern format 3)
    {"task": {...}, "seed": 0, "regularizer": {"name": "dropout", "params": {"p": 0.1}}}
    {"task": {...}, "seed": 0, "regularizer": {"name": "none", "params": {}}}

The space is in its one serialized form (:func:`~autodropout.search_spaces.space_to_json`); the
pattern travels once, as its sites (its tokens follow from it and the space: :attr:`Trial.tokens`).
Trial folders written before then hold the space as one ``{"kind": ..., **space_config}`` object and
the pattern's ``tokens`` too; both still read (the tokens are ignored).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autodropout.core.checks import is_int
from autodropout.core.config import to_dict
from autodropout.core.errors import ConfigError
from autodropout.search_spaces import SearchSpace, pattern_from_json, space_from_json, space_to_json
from autodropout.tasks import Regularization, task_config_from_dict

#: ``tokens``: written by older versions beside the pattern, read and ignored.
_KEYS = {"task", "seed", "space", "space_config", "pattern", "embeddings", "tokens", "regularizer", "label"}


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

    @property
    def tokens(self) -> list[int] | None:
        """The pattern's tokens in its space (``None`` without a pattern)."""
        return None if self.space is None else self.space.encode(self.regularization.pattern)

    def to_config(self) -> dict[str, Any]:
        """The JSON-able dict Ray carries (see the module docstring)."""
        config: dict[str, Any] = {"task": to_dict(self.task), "seed": self.seed}
        r = self.regularization
        if r.pattern is not None:
            config.update(space_to_json(self.space), pattern=r.pattern.to_json())
            if self.space.num_embeddings:
                config["embeddings"] = r.pattern.embeddings_to_json()
        else:
            config["regularizer"] = {"name": r.name or "none", "params": dict(r.params)}
        if self.label is not None:
            config["label"] = self.label
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Trial:
        """Read :meth:`to_config`'s dict back (or an older version's, see the module docstring),
        validating every part once."""
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise ConfigError(f"trial config: unknown key {unknown[0]!r} (expected among {sorted(_KEYS)})")
        for key in ("task", "seed"):
            if key not in config:
                raise ConfigError(f"trial config: missing key {key!r}")
        task = task_config_from_dict(config["task"], "trial.task")
        label = config.get("label")
        if "pattern" in config:
            space = space_from_json(_space_form(config))
            pattern = pattern_from_json(space, config["pattern"], config.get("embeddings", []), "trial config: ")
            return cls(task, Regularization(pattern=pattern), config["seed"], space, label)
        spec = config.get("regularizer")
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError("trial config: expected a 'pattern' or a 'regularizer': {name, params} entry")
        regularization = (Regularization.none() if spec["name"] == "none"
                          else Regularization(name=spec["name"], params=dict(spec.get("params") or {})))
        return cls(task, regularization, config["seed"], None, label)


def _space_form(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config``'s space in its one form; an older trial folder's ``{"space": {"kind": ..., **space_config}}``
    is turned into it."""
    old = config.get("space")
    if not isinstance(old, Mapping):
        return config
    space_config = dict(old)
    return {"space": space_config.pop("kind", None), "space_config": space_config}
