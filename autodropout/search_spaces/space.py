"""The generic mechanics of a search space: decisions, sampling, decode/encode, size, validation.

A space is a short list of decision *types* (a field name and its finite choices), repeated once per
pattern site of the target model. A space may have a second group of sites, the *embedding sites*
(``TransformerSpace``: the embedding outputs), with their own per-site dataclass and value sets; their
decisions come first, in forward order, then the layer sites'. The controller only ever sees token
sequences: token ``i`` is the index of the chosen value for ``decisions[i]``. ``decode`` turns tokens
into a :class:`Pattern` of per-site dataclasses and ``encode`` is its exact inverse. Pure Python: no
torch here.
"""
from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from autodropout.core.checks import first_missing_and_unknown, is_int
from autodropout.core.errors import PatternError

#: The two site groups: the model's layer sites (every space) and its embedding sites (some spaces).
LAYER, EMBEDDING = "layer", "embedding"
#: Per site, a decision's field name and choices, in token order.
DecisionTypes = tuple[tuple[str, tuple[Any, ...]], ...]
Mask = tuple[bool, ...] | None


@dataclass(frozen=True)
class Decision:
    """One token position: which site of which group it belongs to, which field it sets, and the
    allowed values."""

    site: int
    name: str
    choices: tuple[Any, ...]
    group: str = LAYER

    @property
    def key(self) -> str:
        """``"site 3.size"`` for a layer site, ``"embedding 0.size"`` for an embedding site."""
        return f"{_label(self.group)} {self.site}.{self.name}"

    @property
    def type_key(self) -> tuple[str, str]:
        """``(group, name)``: the decision type, shared by every site of its group."""
        return self.group, self.name


def _label(group: str) -> str:
    return "site" if group == LAYER else group


@dataclass(frozen=True)
class Pattern:
    """One dropout pattern for a whole model: ``layers[i]`` is the pattern of site ``i``.

    Attributes:
        kind: ``"conv"`` or ``"transformer"``, the space it belongs to.
        layers: one frozen per-site dataclass (``ConvLayerPattern`` or ``TransformerLayerPattern``).
        embeddings: one ``EmbeddingPattern`` per embedding site, in forward order (empty for conv
            patterns and for Transformer patterns of a space without embedding sites).
    """

    kind: str
    layers: tuple[Any, ...]
    embeddings: tuple[Any, ...] = ()

    def __len__(self) -> int:
        return len(self.layers)

    def to_json(self) -> list[dict[str, Any]]:
        """The layers as JSON objects (a pattern file's ``layers``)."""
        return sites_json(self.layers)

    def embeddings_to_json(self) -> list[dict[str, Any]]:
        """The embedding patterns as JSON objects (a pattern file's ``embeddings``)."""
        return sites_json(self.embeddings)


def sites_json(sites: Sequence[Any]) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in dataclasses.asdict(site).items()} for site in sites]


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


@dataclass(frozen=True)
class SiteGroup:
    """The sites of one group, in token order: ``count`` sites of ``site_type``, each with the
    decisions ``types``."""

    name: str
    count: int
    site_type: type
    types: DecisionTypes


class SearchSpace:
    """Base class: subclasses set ``kind``, ``layer_type`` and ``values_type`` (and, for a space with
    embedding sites, ``embedding_type`` and ``embedding_values_type``).

    Args:
        num_sites: number of layer sites of the target model (from the model, e.g.
            ``WideResNet.num_sites``).
        values: the value set of every layer decision; defaults to the documented defaults of
            :mod:`autodropout.search_spaces.values`.
        num_embeddings: number of embedding sites (0: none; only spaces with an ``embedding_type``).
        embedding_values: the value sets of the embedding decisions (default: the documented ones).
    """

    kind: ClassVar[str]
    layer_type: ClassVar[type]
    values_type: ClassVar[type]
    embedding_type: ClassVar[type | None] = None
    embedding_values_type: ClassVar[type | None] = None
    #: Fields absent from the layers of version-2 pattern files, with the value they take there; the
    #: reader adds them (and a one-choice value set of each to the file's space).
    v2_upgrade: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, num_sites: int, values: Any = None, *, num_embeddings: int = 0,
                 embedding_values: Any = None) -> None:
        if not is_int(num_sites, 1):
            raise PatternError(f"num_sites must be a positive int, got {num_sites!r}")
        if not is_int(num_embeddings, 0):
            raise PatternError(f"num_embeddings must be an int >= 0, got {num_embeddings!r}")
        if num_embeddings and self.embedding_type is None:
            raise PatternError(f"the {self.kind} space has no embedding sites (num_embeddings must be 0)")
        self.num_sites = num_sites
        self.num_embeddings = num_embeddings
        self.values = _values_or_default(values, self.values_type, "values")
        self.embedding_values = None if self.embedding_values_type is None else _values_or_default(
            embedding_values, self.embedding_values_type, "embedding_values")
        self.decision_types: DecisionTypes = _types(self.layer_type, self.values)
        self.embedding_types: DecisionTypes = (
            _types(self.embedding_type, self.embedding_values) if self.embedding_type is not None else ())
        self.groups: tuple[SiteGroup, ...] = tuple(group for group in (
            SiteGroup(EMBEDDING, num_embeddings, self.embedding_type, self.embedding_types),
            SiteGroup(LAYER, num_sites, self.layer_type, self.decision_types),
        ) if group.count)
        self.decisions: tuple[Decision, ...] = tuple(
            Decision(site, name, choices, group.name)
            for group in self.groups for site in range(group.count) for name, choices in group.types
        )

    # -- size and sampling -------------------------------------------------------------------
    @property
    def tokens_per_site(self) -> int:
        """Tokens of one layer site."""
        return len(self.decision_types)

    @property
    def layers_per_site(self) -> int:
        """Distinct layer patterns of one site: every combination of choices that
        :meth:`choice_mask` allows (all of them unless a subclass forbids some)."""
        return math.prod(len(choices) for _, choices in self.decision_types)

    @property
    def embeddings_per_site(self) -> int:
        """Distinct patterns of one embedding site (as :attr:`layers_per_site`)."""
        return math.prod(len(choices) for _, choices in self.embedding_types)

    @property
    def size(self) -> int:
        """Number of distinct patterns in the space (exact integer)."""
        return self.layers_per_site**self.num_sites * self.embeddings_per_site**self.num_embeddings

    def locate(self, position: int) -> tuple[str, int, int]:
        """``(group, site, offset)`` of token ``position``: its group, its site there, and its index
        among that site's tokens."""
        for group in self.groups:
            span = group.count * len(group.types)
            if position < span:
                return group.name, position // len(group.types), position % len(group.types)
            position -= span
        raise IndexError(f"token position out of range for {len(self.decisions)} tokens")

    def choice_mask(self, prefix: Sequence[int]) -> tuple[bool, ...] | None:
        """Which choices of decision ``len(prefix)`` are allowed after the tokens ``prefix``.

        ``None`` (the default) allows all of them; a space that must rule out degenerate patterns or
        synonyms returns one bool per choice, at least one true (``TransformerSpace`` forbids a layer
        with every sublayer off, the identity, and forces what an embedding unit does not read).
        :meth:`sample` and the controller (which gives forbidden choices a logit of -inf) only draw
        allowed tokens; :meth:`validate`, :meth:`decode` and :meth:`layer_from_json` reject what it
        forbids. ``prefix`` is only read during the call. The base class asks :meth:`_site_mask`
        with the tokens of the current site so far.
        """
        group, _, offset = self.locate(len(prefix))
        return self._site_mask(group, prefix[len(prefix) - offset:])

    def _site_mask(self, group: str, site_tokens: Sequence[int]) -> Mask:
        """The mask of the next token of a ``group`` site whose earlier tokens are ``site_tokens``."""
        return None

    def _layer_problem(self, layer: Any) -> str | None:
        """Why a layer whose every field is in its value set is still not in the space (the patterns
        :meth:`choice_mask` forbids), or ``None``; subclasses that mask choices override both."""
        return None

    def _embedding_problem(self, embedding: Any) -> str | None:
        """As :meth:`_layer_problem`, for an embedding site."""
        return None

    def _checked(self, group: str, site: Any, where: str) -> Any:
        problem = self._layer_problem(site) if group == LAYER else self._embedding_problem(site)
        if problem is not None:
            raise PatternError(f"{where}{problem}")
        return site

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
            embeddings = f" and {self.num_embeddings} embedding sites" if self.num_embeddings else ""
            raise PatternError(
                f"{self.kind} space with {self.num_sites} sites{embeddings} expects {len(self.decisions)} "
                f"tokens, got {len(tokens)}"
            )
        sites: dict[str, list[Any]] = {LAYER: [], EMBEDDING: []}
        position = 0
        for group in self.groups:
            for site in range(group.count):
                fields = {}
                for name, choices in group.types:
                    token = tokens[position]
                    position += 1
                    if not is_int(token, 0, len(choices) - 1):
                        raise PatternError(f"{_label(group.name)} {site} field {name!r}: token {token!r} is not "
                                           f"in 0..{len(choices) - 1}")
                    fields[name] = choices[token]
                where = f"{_label(group.name)} {site}: "
                sites[group.name].append(self._checked(group.name, group.site_type(**fields), where))
        return Pattern(self.kind, tuple(sites[LAYER]), tuple(sites[EMBEDDING]))

    def encode(self, pattern: Pattern) -> list[int]:
        """Exact inverse of :meth:`decode`; validates the pattern first."""
        self.validate(pattern)
        tokens = []
        for group, sites in self._sites_of(pattern):
            for site in sites:
                for name, choices in group.types:
                    value = getattr(site, name)
                    tokens.append(next(i for i, c in enumerate(choices) if same_value(value, c)))
        return tokens

    def _sites_of(self, pattern: Pattern) -> list[tuple[SiteGroup, tuple[Any, ...]]]:
        return [(group, pattern.layers if group.name == LAYER else pattern.embeddings) for group in self.groups]

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
        if len(pattern.embeddings) != self.num_embeddings:
            raise PatternError(f"pattern has {len(pattern.embeddings)} embedding sites, the {self.kind} space "
                               f"has {self.num_embeddings}")
        for group, sites in self._sites_of(pattern):
            for index, site in enumerate(sites):
                where = f"{_label(group.name)} {index}"
                if not isinstance(site, group.site_type):
                    raise PatternError(f"{where}: expected {group.site_type.__name__}, got {type(site).__name__}")
                for name, choices in group.types:
                    value = getattr(site, name)
                    if not any(same_value(value, c) for c in choices):
                        raise PatternError(
                            f"{where} field {name!r}: {value!r} is not one of {list(map(_jsonable, choices))}"
                        )
                self._checked(group.name, site, f"{where}: ")

    def layer_from_json(self, fields: Mapping[str, Any], where: str = "") -> Any:
        """One layer site's JSON object -> layer dataclass, with errors naming ``where`` and the field."""
        return self._site_from_json(LAYER, self.layer_type, self.decision_types, fields, where)

    def embedding_from_json(self, fields: Mapping[str, Any], where: str = "") -> Any:
        """One embedding site's JSON object -> embedding dataclass (as :meth:`layer_from_json`)."""
        if self.embedding_type is None:
            raise PatternError(f"{where}the {self.kind} space has no embedding sites")
        return self._site_from_json(EMBEDDING, self.embedding_type, self.embedding_types, fields, where)

    def _site_from_json(self, group: str, site_type: type, types: DecisionTypes, fields: Mapping[str, Any],
                        where: str) -> Any:
        names = [name for name, _ in types]
        missing, extra = first_missing_and_unknown(fields, names)
        if missing is not None or extra is not None:
            what = f"missing field {missing!r}" if missing is not None else f"unknown field {extra!r}"
            raise PatternError(f"{where}{what} (expected fields: {names})")
        values = {}
        for name, choices in types:
            value = fields[name]
            match = next((c for c in choices if same_value(value, c)), _MISSING)
            if match is _MISSING:
                raise PatternError(
                    f"{where}field {name!r}: {value!r} is not one of {list(map(_jsonable, choices))}"
                )
            values[name] = match
        return self._checked(group, site_type(**values), where)

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description: site counts and every value set (``space_config`` in pattern JSON);
        ``num_embeddings`` and ``embedding_values`` only when the space has embedding sites."""
        config: dict[str, Any] = {"num_sites": self.num_sites, "values": _values_json(self.decision_types)}
        if self.num_embeddings:
            config.update(num_embeddings=self.num_embeddings, embedding_values=_values_json(self.embedding_types))
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SearchSpace:
        """Inverse of :meth:`config`; a partial ``values`` (or ``embedding_values``) mapping overrides
        only those fields."""
        keys = ["num_sites", "values"] + (["num_embeddings", "embedding_values"] if cls.embedding_type else [])
        unknown = sorted(set(config) - set(keys))
        if unknown:
            raise PatternError(f"space_config: unknown key {unknown[0]!r} (expected {', '.join(keys)})")
        if "num_sites" not in config:
            raise PatternError("space_config: missing key 'num_sites'")
        values = cls.values_type.from_mapping(config.get("values", {}))
        if cls.embedding_values_type is None:
            return cls(config["num_sites"], values)
        if "embedding_values" in config and not config.get("num_embeddings"):
            raise PatternError("space_config: 'embedding_values' given without embedding sites (num_embeddings)")
        embedding_values = cls.embedding_values_type.from_mapping(config.get("embedding_values", {}),
                                                                       "embedding_values")
        return cls(config["num_sites"], values, num_embeddings=config.get("num_embeddings", 0),
                   embedding_values=embedding_values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash((self.kind, self.num_sites, self.num_embeddings))

    def __repr__(self) -> str:
        embeddings = f", num_embeddings={self.num_embeddings}" if self.num_embeddings else ""
        return f"{type(self).__name__}(num_sites={self.num_sites}{embeddings}, tokens={len(self.decisions)})"


def _values_or_default(values: Any, values_type: type, name: str) -> Any:
    values = values if values is not None else values_type()
    if not isinstance(values, values_type):
        raise TypeError(f"{name} must be a {values_type.__name__}, got {type(values).__name__}")
    return values


def _types(site_type: type, values: Any) -> DecisionTypes:
    return tuple((f.name, tuple(getattr(values, f.name))) for f in dataclasses.fields(site_type))


def _values_json(types: DecisionTypes) -> dict[str, list[Any]]:
    return {name: [_jsonable(c) for c in choices] for name, choices in types}


_MISSING = object()
