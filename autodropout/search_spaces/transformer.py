"""The Transformer search space: one pattern per layer (Pham & Le 2021, sec. 3.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from autodropout.errors import PatternError
from autodropout.search_spaces.space import SearchSpace
from autodropout.search_spaces.values import TransformerValues

#: Sublayer sites of a Transformer layer that a pattern can switch on, in token order.
SUBLAYERS: tuple[str, ...] = ("query", "key", "value", "attn_output", "ffn_hidden", "ffn_output")


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


class TransformerSpace(SearchSpace):
    """``num_sites`` (= layers) Transformer patterns (value sets: :class:`TransformerValues`).

    A layer with all six sublayer switches off would be the identity, so the space forbids it: the
    last switch whose value set contains ``true`` (``ffn_output`` by default) must be on when every
    earlier switch of its layer is off (:meth:`choice_mask`).
    """

    kind = "transformer"
    layer_type = TransformerLayerPattern
    values_type = TransformerValues

    def __init__(self, num_sites: int, values: Any = None) -> None:
        super().__init__(num_sites, values)
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

    def choice_mask(self, prefix: Sequence[int]) -> tuple[bool, ...] | None:
        offset = len(prefix) % self.tokens_per_site
        if offset != self._last_switch:
            return None
        start = len(prefix) - offset
        earlier = [
            on[prefix[start + position]]
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

    @property
    def layers_per_site(self) -> int:
        all_off = math.prod(
            sum(c is False for c in choices) for name, choices in self.decision_types if name in SUBLAYERS
        ) * math.prod(len(choices) for name, choices in self.decision_types if name not in SUBLAYERS)
        return super().layers_per_site - all_off
