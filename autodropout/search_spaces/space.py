"""The generic mechanics of a search space: decisions, sampling, decode/encode, size, validation.

A space is a short list of decision *types* (a field name and its finite choices), repeated once per
pattern site of the target model. The controller only ever sees token sequences: token ``i`` is the
index of the chosen value for ``decisions[i]``. ``decode`` turns tokens into a :class:`Pattern` of
per-site dataclasses and ``encode`` is its exact inverse. Pure Python: no torch here.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from autodropout.checks import first_missing_and_unknown, is_int
from autodropout.errors import PatternError


@dataclass(frozen=True)
class Decision:
    """One token position: which site it belongs to, which field it sets, and the allowed values."""

    site: int
    name: str
    choices: tuple[Any, ...]

    @property
    def key(self) -> str:
        return f"site {self.site}.{self.name}"


@dataclass(frozen=True)
class Pattern:
    """One dropout pattern for a whole model: ``layers[i]`` is the pattern of site ``i``.

    Attributes:
        kind: ``"conv"`` or ``"transformer"``, the space it belongs to.
        layers: one frozen per-site dataclass (``ConvLayerPattern`` or ``TransformerLayerPattern``).
    """

    kind: str
    layers: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.layers)

    def to_json(self) -> list[dict[str, Any]]:
        return [{k: _jsonable(v) for k, v in dataclasses.asdict(layer).items()} for layer in self.layers]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def same_value(value: Any, choice: Any) -> bool:
    """Equality that respects JSON types: ``True`` is not ``1``; ints may stand for floats."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return type(value) is type(choice) and value == choice
    if isinstance(choice, tuple):
        return (
            isinstance(value, (tuple, list))
            and len(value) == len(choice)
            and all(same_value(v, c) for v, c in zip(value, choice))
        )
    if isinstance(choice, float):
        return isinstance(value, (int, float)) and float(value) == choice
    return type(value) is type(choice) and value == choice


class SearchSpace:
    """Base class: subclasses set ``kind``, ``layer_type`` and ``values_type``.

    Args:
        num_sites: number of pattern sites of the target model (from the model, e.g.
            ``WideResNet.num_sites``).
        values: the value set of every decision; defaults to the documented defaults of
            :mod:`autodropout.search_spaces.values`.
    """

    kind: ClassVar[str]
    layer_type: ClassVar[type]
    values_type: ClassVar[type]

    def __init__(self, num_sites: int, values: Any = None) -> None:
        if not is_int(num_sites, 1):
            raise PatternError(f"num_sites must be a positive int, got {num_sites!r}")
        self.num_sites = num_sites
        self.values = values if values is not None else self.values_type()
        if not isinstance(self.values, self.values_type):
            raise TypeError(f"values must be a {self.values_type.__name__}, got {type(self.values).__name__}")
        self.decision_types: tuple[tuple[str, tuple[Any, ...]], ...] = tuple(
            (f.name, tuple(getattr(self.values, f.name))) for f in dataclasses.fields(self.layer_type)
        )
        self.decisions: tuple[Decision, ...] = tuple(
            Decision(site, name, choices)
            for site in range(num_sites)
            for name, choices in self.decision_types
        )

    # -- size and sampling -------------------------------------------------------------------
    @property
    def tokens_per_site(self) -> int:
        return len(self.decision_types)

    @property
    def layers_per_site(self) -> int:
        """Distinct layer patterns of one site: every combination of choices that
        :meth:`choice_mask` allows (all of them unless a subclass forbids some)."""
        return math.prod(len(choices) for _, choices in self.decision_types)

    @property
    def size(self) -> int:
        """Number of distinct patterns in the space (exact integer)."""
        return self.layers_per_site**self.num_sites

    def choice_mask(self, prefix: Sequence[int]) -> tuple[bool, ...] | None:
        """Which choices of decision ``len(prefix)`` are allowed after the tokens ``prefix``.

        ``None`` (the default) allows all of them; a space that must rule out degenerate patterns
        returns one bool per choice, at least one true (``TransformerSpace`` forbids a layer with
        every sublayer off, the identity). :meth:`sample` and the controller (which gives forbidden
        choices a logit of -inf) only draw allowed tokens; :meth:`validate`, :meth:`decode` and
        :meth:`layer_from_json` reject what it forbids. ``prefix`` is only read during the call.
        """
        return None

    def _layer_problem(self, layer: Any) -> str | None:
        """Why a layer whose every field is in its value set is still not in the space (the patterns
        :meth:`choice_mask` forbids), or ``None``; subclasses that mask choices override both."""
        return None

    def _checked(self, layer: Any, where: str) -> Any:
        problem = self._layer_problem(layer)
        if problem is not None:
            raise PatternError(f"{where}{problem}")
        return layer

    def sample(self, rng_or_seed: random.Random | int | None = None) -> list[int]:
        """Random tokens, each uniform among the choices :meth:`choice_mask` allows after the earlier
        ones (the distribution of an untrained, uniform controller); ``rng_or_seed`` is a
        ``random.Random`` or a seed."""
        rng = rng_or_seed if isinstance(rng_or_seed, random.Random) else random.Random(rng_or_seed)
        tokens: list[int] = []
        for decision in self.decisions:
            allowed = self.choice_mask(tokens)
            if allowed is None:
                tokens.append(rng.randrange(len(decision.choices)))
            else:
                tokens.append(rng.choice([i for i, ok in enumerate(allowed) if ok]))
        return tokens

    # -- tokens <-> pattern ----------------------------------------------------------------------
    def decode(self, tokens: Sequence[int]) -> Pattern:
        """Tokens -> :class:`Pattern`; raises :class:`PatternError` on a bad length or index."""
        if len(tokens) != len(self.decisions):
            raise PatternError(
                f"{self.kind} space with {self.num_sites} sites expects {len(self.decisions)} tokens, "
                f"got {len(tokens)}"
            )
        layers = []
        per_site = self.tokens_per_site
        for site in range(self.num_sites):
            fields = {}
            for offset, (name, choices) in enumerate(self.decision_types):
                token = tokens[site * per_site + offset]
                if not is_int(token, 0, len(choices) - 1):
                    raise PatternError(
                        f"site {site} field {name!r}: token {token!r} is not in 0..{len(choices) - 1}"
                    )
                fields[name] = choices[token]
            layers.append(self._checked(self.layer_type(**fields), f"site {site}: "))
        return Pattern(self.kind, tuple(layers))

    def encode(self, pattern: Pattern) -> list[int]:
        """Exact inverse of :meth:`decode`; validates the pattern first."""
        self.validate(pattern)
        tokens = []
        for layer in pattern.layers:
            for name, choices in self.decision_types:
                value = getattr(layer, name)
                tokens.append(next(i for i, c in enumerate(choices) if same_value(value, c)))
        return tokens

    def validate(self, pattern: Pattern) -> None:
        """Raise :class:`PatternError` naming the site and field if ``pattern`` is not in this space."""
        if not isinstance(pattern, Pattern):
            raise PatternError(f"expected a Pattern, got {type(pattern).__name__}")
        if pattern.kind != self.kind:
            raise PatternError(f"pattern is for a {pattern.kind!r} space, this space is {self.kind!r}")
        if len(pattern.layers) != self.num_sites:
            raise PatternError(
                f"pattern has {len(pattern.layers)} sites, the {self.kind} space has {self.num_sites}"
            )
        for site, layer in enumerate(pattern.layers):
            if not isinstance(layer, self.layer_type):
                raise PatternError(f"site {site}: expected {self.layer_type.__name__}, got {type(layer).__name__}")
            for name, choices in self.decision_types:
                value = getattr(layer, name)
                if not any(same_value(value, c) for c in choices):
                    raise PatternError(
                        f"site {site} field {name!r}: {value!r} is not one of {list(map(_jsonable, choices))}"
                    )
            self._checked(layer, f"site {site}: ")

    def layer_from_json(self, fields: Mapping[str, Any], where: str = "") -> Any:
        """One site's JSON object -> layer dataclass, with errors naming ``where`` and the field."""
        names = [name for name, _ in self.decision_types]
        missing, extra = first_missing_and_unknown(fields, names)
        if missing is not None or extra is not None:
            what = f"missing field {missing!r}" if missing is not None else f"unknown field {extra!r}"
            raise PatternError(f"{where}{what} (expected fields: {names})")
        values = {}
        for name, choices in self.decision_types:
            value = fields[name]
            match = next((c for c in choices if same_value(value, c)), _MISSING)
            if match is _MISSING:
                raise PatternError(
                    f"{where}field {name!r}: {value!r} is not one of {list(map(_jsonable, choices))}"
                )
            values[name] = match
        return self._checked(self.layer_type(**values), where)

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description: site count and every value set (``space_config`` in pattern JSON)."""
        return {
            "num_sites": self.num_sites,
            "values": {name: [_jsonable(c) for c in choices] for name, choices in self.decision_types},
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SearchSpace":
        """Inverse of :meth:`config`; a partial ``values`` mapping overrides only those fields."""
        unknown = sorted(set(config) - {"num_sites", "values"})
        if unknown:
            raise PatternError(f"space_config: unknown key {unknown[0]!r} (expected num_sites, values)")
        if "num_sites" not in config:
            raise PatternError("space_config: missing key 'num_sites'")
        values = cls.values_type.from_mapping(config.get("values", {}))
        return cls(config["num_sites"], values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash((self.kind, self.num_sites))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_sites={self.num_sites}, tokens={len(self.decisions)})"


_MISSING = object()
