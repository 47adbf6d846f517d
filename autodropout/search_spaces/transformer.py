"""The Transformer search space: one pattern per layer (Pham & Le 2021, sec. 3.2) and, since pattern
format version 3, one per embedding output (the embedding sites, before the layers' in token order).

Every Transformer baseline acts after the embeddings, and that site carries most of its gain
(``docs/search_spaces.md``), so the space reaches it too: an :class:`EmbeddingPattern` drops runs of
hidden units (the layers' comb), runs of whole tokens (word-level dropout), or nothing.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from autodropout.core.errors import PatternError
from autodropout.search_spaces.space import EMBEDDING, Mask, SearchSpace, same_value
from autodropout.search_spaces.values import EmbeddingValues, TransformerValues

#: Sublayer sites of a Transformer layer that a pattern can switch on, in token order.
SUBLAYERS: tuple[str, ...] = ("query", "key", "value", "attn_output", "ffn_hidden", "ffn_output")
#: What an embedding pattern drops, and the decisions each unit ignores (forced to their first choice).
EMBEDDING_UNITS: dict[str, tuple[str, ...]] = {
    "off": ("size", "stride", "span", "noise"),
    "feature": (),
    "token": ("span",),
}


def hidden_run(size: int, hidden: int) -> int:
    """Units dropped together along an axis of ``hidden >= 1`` units: ``size``, cut to
    ``hidden - 1`` so that a run never covers the whole axis (a whole head, or every token); an axis
    of one unit gets a run of 0 (nothing is dropped)."""
    return min(size, hidden - 1)


def nominal_rate(size: int, stride: int, hidden: int) -> Fraction:
    """Exact probability that a comb drops a given unit of an axis of ``hidden`` units: runs of
    ``n = hidden_run(size, hidden)`` units every ``n + stride`` units from a uniform offset, so
    ``n / (n + stride)`` (``size / (size + stride)`` unless the run was cut). For Gaussian noise, the
    rate whose Bernoulli multiplier has the same variance."""
    run = hidden_run(size, hidden)
    return Fraction(run, run + stride)


@dataclass(frozen=True)
class TransformerLayerPattern:
    """The pattern of one Transformer layer.

    The six booleans say at which sublayers it acts (query/key/value act on per-head tensors
    (B, heads, T, d); the others on (B, T, C)); in a :class:`TransformerSpace` at least one is on.
    Along the hidden axis, ``size`` consecutive units are dropped every ``size + stride`` units from a
    random offset (the run is cut to ``d - 1`` units on axes of ``d <= size`` units, so no head is
    ever dropped whole); ``span`` consecutive tokens share one offset ("all": the whole sequence);
    ``share_heads`` shares it across heads; ``noise`` is "bernoulli" (zeros, rescaled) or "gaussian"
    (multiplicative noise of equal variance). See ``regularizers.pattern_transformer``.
    """

    query: bool
    key: bool
    value: bool
    attn_output: bool
    ffn_hidden: bool
    ffn_output: bool
    size: int
    stride: int
    span: int | str
    share_heads: bool
    noise: str

    @property
    def sublayers(self) -> tuple[str, ...]:
        """Names of the sublayers this pattern is applied at."""
        return tuple(name for name in SUBLAYERS if getattr(self, name))

    def rate(self, hidden: int) -> Fraction:
        """Exact drop rate of every unit of a sublayer input whose last axis has ``hidden`` units."""
        return nominal_rate(self.size, self.stride, hidden)


@dataclass(frozen=True)
class EmbeddingPattern:
    """The pattern of one embedding output (B, T, C) (format version 3).

    ``unit`` is ``"off"`` (the identity), ``"feature"`` (the layers' comb along the hidden axis:
    ``size`` units dropped every ``size + stride`` units, ``span`` consecutive tokens sharing one
    offset, "all" for a whole-sequence mask, variational style) or ``"token"`` (whole token vectors:
    ``size`` consecutive tokens dropped every ``size + stride`` tokens from one random offset per
    sample; word-level dropout). ``noise`` as in :class:`TransformerLayerPattern`: "gaussian" gives
    each window of the comb one multiplier (for ``"token"``, whole tokens are multiplied). In a
    :class:`TransformerSpace` the fields a unit ignores take their first choice
    (:data:`EMBEDDING_UNITS`). See ``regularizers.pattern_embedding``.
    """

    unit: str
    size: int
    stride: int
    span: int | str
    noise: str

    def rate(self, tokens: int, hidden: int) -> Fraction:
        """Exact drop rate of every unit of a ``(B, tokens, hidden)`` embedding output (0 for "off")."""
        if self.unit == "off":
            return Fraction(0)
        return nominal_rate(self.size, self.stride, tokens if self.unit == "token" else hidden)


class TransformerSpace(SearchSpace):
    """``num_sites`` (= layers) Transformer patterns (value sets: :class:`TransformerValues`) and
    ``num_embeddings`` embedding patterns (:class:`EmbeddingValues`; 0 by default, as in version 2).

    A layer with all six sublayer switches off would be the identity, so the space forbids it: the
    last switch whose value set contains ``true`` (``ffn_output`` by default) must be on when every
    earlier switch of its layer is off (:meth:`choice_mask`). An embedding site's ``unit`` comes first
    and forces the decisions it ignores to their first choice, so every pattern has one encoding
    (the "off" embedding is allowed: no regularization there).
    """

    kind = "transformer"
    layer_type = TransformerLayerPattern
    values_type = TransformerValues
    embedding_type = EmbeddingPattern
    embedding_values_type = EmbeddingValues

    def __init__(self, num_sites: int, values: Any = None, *, num_embeddings: int = 0,
                 embedding_values: Any = None) -> None:
        super().__init__(num_sites, values, num_embeddings=num_embeddings, embedding_values=embedding_values)
        types = dict(self.decision_types)
        names = [name for name, _ in self.decision_types]
        can_be_on = [name for name in SUBLAYERS if any(c is True for c in types[name])]
        if not can_be_on:
            raise PatternError(
                f"values: at least one sublayer switch ({', '.join(SUBLAYERS)}) must allow true; "
                "with all of them always false every layer would be the identity"
            )
        # Token offsets (within a site) of the switches, and of the one that must close the gap.
        self._switch_offsets = tuple(names.index(name) for name in SUBLAYERS)
        self._last_switch = names.index(can_be_on[-1])
        self._on = tuple(tuple(c is True for c in types[name]) for name in SUBLAYERS)
        self._units: tuple[str, ...] = dict(self.embedding_types)["unit"]
        for unit in self._units:
            if unit not in EMBEDDING_UNITS:
                raise PatternError(f"embedding_values.unit: {unit!r} is not a unit (expected some of "
                                   f"{list(EMBEDDING_UNITS)})")
        # Per unit, the mask of each later decision of an embedding site, in token order.
        self._unit_rules: dict[str, tuple[Mask, ...]] = {unit: tuple(
            tuple(i == 0 for i in range(len(choices))) if name in EMBEDDING_UNITS[unit] and len(choices) > 1 else None
            for name, choices in self.embedding_types[1:]
        ) for unit in self._units}

    def _site_mask(self, group: str, site_tokens: Sequence[int]) -> Mask:
        offset = len(site_tokens)
        if group == EMBEDDING:
            return None if offset == 0 else self._unit_rules[self._units[site_tokens[0]]][offset - 1]
        if offset != self._last_switch:
            return None
        earlier = [
            on[site_tokens[position]]
            for position, on in zip(self._switch_offsets, self._on)
            if position < offset
        ]
        return None if any(earlier) else self._on[self._switch_offsets.index(offset)]

    def _layer_problem(self, layer: Any) -> str | None:
        if layer.sublayers:
            return None
        return (
            f"every sublayer switch ({', '.join(SUBLAYERS)}) is false, so the layer would be the "
            "identity; the space requires at least one to be true"
        )

    def _embedding_problem(self, embedding: Any) -> str | None:
        for name, choices in self.embedding_types[1:]:
            value = getattr(embedding, name)
            if name in EMBEDDING_UNITS[embedding.unit] and not same_value(value, choices[0]):
                return (f"unit {embedding.unit!r} does not use field {name!r}, which must then be its first "
                        f"choice {json.dumps(choices[0])} (one encoding per pattern), got {json.dumps(value)}")
        return None

    def off_embedding(self) -> EmbeddingPattern:
        """The embedding pattern that does nothing, as this space encodes it (unit "off", every other
        field its first choice); a :class:`PatternError` if the space's units leave "off" out."""
        if "off" not in self._units:
            raise PatternError(f"embedding_values.unit: {list(self._units)} has no 'off', so an embedding site "
                               "cannot be left unregularized")
        return EmbeddingPattern("off", *(choices[0] for _, choices in self.embedding_types[1:]))

    @property
    def layers_per_site(self) -> int:
        all_off = math.prod(
            sum(c is False for c in choices) for name, choices in self.decision_types if name in SUBLAYERS
        ) * math.prod(len(choices) for name, choices in self.decision_types if name not in SUBLAYERS)
        return super().layers_per_site - all_off

    @property
    def embeddings_per_site(self) -> int:
        return sum(
            math.prod(1 if name in EMBEDDING_UNITS[unit] else len(choices)
                      for name, choices in self.embedding_types[1:])
            for unit in self._units
        )
