"""The Transformer search space: one pattern per layer (Pham & Le 2021, sec. 3.2)."""
from __future__ import annotations

from dataclasses import dataclass

from autodropout.search_spaces.space import SearchSpace
from autodropout.search_spaces.values import TransformerValues

#: Sublayer sites of a Transformer layer that a pattern can switch on, in token order.
SUBLAYERS: tuple[str, ...] = ("query", "key", "value", "attn_output", "ffn_hidden", "ffn_output")


@dataclass(frozen=True)
class TransformerLayerPattern:
    """The pattern of one Transformer layer.

    The six booleans say at which sublayers it acts (query/key/value act on per-head tensors
    (B, heads, T, d); the others on (B, T, C)). Along the hidden axis, ``size`` consecutive units are
    dropped every ``size + stride`` units from a random offset; ``span`` consecutive tokens share one
    offset ("all": the whole sequence); ``share_heads`` shares it across heads; ``noise`` is
    "bernoulli" (zeros, rescaled) or "gaussian" (multiplicative noise of equal variance).
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
    """``num_sites`` (= layers) Transformer patterns (value sets: :class:`TransformerValues`)."""

    kind = "transformer"
    layer_type = TransformerLayerPattern
    values_type = TransformerValues
