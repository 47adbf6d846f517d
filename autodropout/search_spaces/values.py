"""The value set of every decision, in one place, with the reasoning.

The paper (Pham & Le, AAAI 2021, arXiv 2101.01761) names the decisions but never published their
value sets, so these are ours. Each is a small frozen dataclass; pass your own to ``ConvSpace`` /
``TransformerSpace`` (or a ``values:`` mapping in an experiment YAML) to search a different space.

ConvNet pattern (format version 3: ``unit`` and ``rate`` first, then the paper's 8 decisions; tiles are
laid relative to the map, see :mod:`autodropout.search_spaces.conv`; sites are the BatchNorm outputs
of residual branches, at 32/16/8 on CIFAR WRN-28, 56/28/14/7 on ImageNet ResNet-50, 16/8/4 on the
embedded digits preset):

* ``unit`` in {"tile", "element", "channel", "sample"}: what one keep bit covers. "tile" is the
  paper's structured geometry (the decisions below); the others are the hand-designed regularizers a
  study compares with, so that a search can at worst match them (issue 20): single activations
  (dropout), whole channels of a sample (spatial dropout, Tompson et al. 2015), or the whole
  (C, H, W) activation of a sample (DropPath-like, Huang et al. 2016). On the digits preset the tuned
  baselines won with unstructured dropping at rates 0.43-0.51, which the tile space could not express.
* ``rate`` in {null, 0.02, 0.06, ..., 0.70}: the drop probability of the non-tile units (null for
  "tile", whose density the geometry sets). Steps of 0.04 put every rate in [0, 0.7] within 0.02 of a
  choice, covering the tuned baselines' domains (U(0, 0.5), DropBlock U(0, 0.3)) with room above.
  ``ConvSpace.choice_mask`` gives every pattern one encoding: "tile" takes null, the other units a
  number and the first choice of every geometry decision (``size`` ... ``share_c``), which they ignore.
* ``size`` (height, width) with each side in {1, 2, 3, 4}, and ``stride`` in {1, 2, 3}: in units of
  the tile period, a tile drops ``size / (size + stride)`` of its period along each axis, so the
  per-axis rates are {1/4, 1/3, 2/5, 1/2, 4/7, 3/5, 2/3, 3/4, 4/5} and the nominal map density
  ``f_h * f_w`` runs from 1/16 to 16/25: from light DropBlock-like rates to Cutout-like ones, never 0,
  never the whole map. Keeping every per-axis rate in [1/4, 4/5] is what bounds the measured density
  to [1/16, 16/25] at every resolution (``docs/search_spaces.md``). ``stride`` sets the level (1:
  rates of 1/2 and more, 3: 1/2 and less), ``size`` the aspect; both orientations of every rectangle
  are listed so the controller need not rely on ``rotate``. Sides {1, 2, 3} (version 2's values) stay
  a subset, so version-2 patterns remain in the space; side 4 adds per-axis rates 4/7 and 4/5. Five
  (size, stride) choices repeat another's rates (a multiple of it: (2, 2) / 2 and (3, 3) / 3 of
  (1, 1) / 1; (2, 4), (4, 2), (4, 4) / 2 of (1, 2), (2, 1), (2, 2) / 1), hence its mask: an
  accepted redundancy of 5 choices in 48.
* ``repeat`` in {1, 2, 4, 8} tiles per axis: one Cutout-like block per map, then periods of 1/2,
  1/4 and 1/8 of the map, which align with the pixel grid of the power-of-two maps above. A period
  keeps at least 2 pixels, so the count is capped at ``L // 2`` (on 4x4 maps 2, 4 and 8 all mean 2;
  on 8x8, 4 and 8 both mean 4): the cap makes such choices synonyms, never no-ops.
* ``rotate`` in {0, 15, 30, 45, 60, 75, 90} degrees: the rectangle set is symmetric under 90
  degrees, and 15-degree steps are the coarsest that make diagonal stripes distinct on 8x8 maps.
* ``shear_x``, ``shear_y`` in {-0.3, -0.15, 0, 0.15, 0.3}: beyond |0.3| a tile sheared over an 8x8
  map degenerates into a diagonal line. Rotation and shear move pixels, never the expected density.
* ``share_c``: one pattern for all channels vs an independent offset per channel.
* ``residual``: also apply the pattern to the block's shortcut path (every unit).

Transformer pattern (one per layer; hidden states (B, T, C), per-head tensors (B, heads, T, d)):

* ``query``, ``key``, ``value``, ``attn_output``, ``ffn_hidden``, ``ffn_output``: whether the layer's
  pattern is applied at that sublayer (the paper lets one pattern act at several sublayers). At least
  one must be on: a layer with all six off would be the identity, so the space forbids it
  (``TransformerSpace.choice_mask``).
* ``size`` in {1, 2, 4, 6} hidden units dropped together and ``stride`` in {4, 6, 7, 8, 9, 16, 49}
  kept units between them. The nominal drop rates ``size / (size + stride)`` are 1/50, 2/51, 1/17,
  4/53, 1/10, 6/55, 1/9, 1/8, 1/7, 2/11, 1/5, 2/9, 1/4, 3/11, 4/13, 1/3, 4/11, 2/5, 3/7, 6/13, 1/2
  (and 3/5): every rate in [0, 0.5], the tuning domain of the baselines a study compares with
  (``study.baselines``), is within 0.02 of one, so a search can match a tuned residual or embedding
  dropout's rate at the same sites (issue 20; version 2's {1, 2, 4} x {4, 8, 16} gave only 0.06, 0.11,
  0.2, 0.33 and 0.5). These are the smallest such sets that keep version 2's as a subset (so its
  patterns stay in the space): 28 (size, stride) pairs and 11 choices, the fewest of either over
  every size set with up to four more sizes of 3..16 and strides of 1..256
  (``python benchmarks/transformer_value_sets.py``). Stride 49 gives the rates near 0 (1/50, 2/51,
  4/53, 6/55); a comb whose pitch exceeds the axis still drops each unit with exactly its rate (the
  offset is uniform over the pitch). The run is at most 6 units, so it never covers a head of 7 or
  more units; on smaller axes it is cut to ``d - 1`` units (:func:`~autodropout.search_spaces.hidden_run`),
  so no mask ever zeroes a whole head, and :func:`~autodropout.search_spaces.nominal_rate` gives the
  exact rate after the cut.
* ``span`` in {1, 2, 4, 8, 16, "all"} consecutive tokens share one mask; "all" is variational
  dropout's mask shared over the whole sequence (Gal & Ghahramani 2016).
* ``share_heads``: heads share the mask of a per-head tensor, or draw their own.
* ``noise``: "bernoulli" zeros, or "gaussian" multiplicative N(1, size/stride) noise shared by the
  same blocks (same variance as the Bernoulli mask of equal rate; Srivastava et al. 2014, sec. 10).

Transformer embedding pattern (format version 3; one per embedding output (B, T, C): the language
model's token + position embedding, the translation model's source and target embeddings), where
every Transformer baseline acts and which carries most of their gain (``docs/search_spaces.md``):

* ``unit`` in {"off", "feature", "token"}: no regularization there; runs of hidden units (the layer
  comb above, with its ``size``, ``stride``, ``span`` and ``noise``); or runs of whole token vectors
  (word-level dropout, like the word embedding dropout of Gal & Ghahramani 2016: ``size`` tokens
  every ``size + stride`` tokens, one random offset per sample). ``TransformerSpace.choice_mask``
  forces the decisions a unit does not read to their first choice ("off": ``size``, ``stride``,
  ``span``, ``noise``; "token": ``span``), so every pattern has one encoding.
* ``size``, ``stride``, ``span``, ``noise``: the same value sets as the layers' and for the same
  reasons (along tokens, the rates of the grid above are as close to a word dropout's).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from autodropout.core.checks import is_int, is_real
from autodropout.core.errors import PatternError


class _BadChoice(PatternError):
    """A choice that makes no usable mask; ``detail`` is the message without the value set's name."""

    def __init__(self, detail: str, where: str) -> None:
        super().__init__(f"{where}.{detail}")
        self.detail = detail


class _Values:
    #: What errors call a value set built in Python (``from_mapping`` names its own).
    where: ClassVar[str] = "values"

    def __post_init__(self) -> None:
        # Every choice must make a usable mask, however the value set was built: the regularizers
        # trust the patterns of a space (they check only hand-made site patterns).
        for f in dataclasses.fields(self):
            for value in getattr(self, f.name):
                _check_like(f.name, value, f.default[0], self.where)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "values") -> Any:
        """Build from JSON/YAML lists; unknown keys, empty or duplicate lists and unusable choices name
        ``where`` and the key."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise PatternError(f"{where}: unknown key {unknown[0]!r} (expected one of {names})")
        out = {}
        for name in names:
            if name not in mapping:
                continue
            raw = mapping[name]
            if not isinstance(raw, (list, tuple)) or not raw:
                raise PatternError(f"{where}.{name}: expected a non-empty list, got {raw!r}")
            choices = tuple(tuple(v) if isinstance(v, list) else v for v in raw)
            if len(set(choices)) != len(choices):
                raise PatternError(f"{where}.{name}: duplicate choices in {list(raw)}")
            out[name] = choices
        try:
            return cls(**out)
        except _BadChoice as exc:
            raise PatternError(f"{where}.{exc.detail}") from None


def _check_like(name: str, value: Any, template: Any, where: str) -> None:
    ok: bool
    if isinstance(template, bool):
        ok = isinstance(value, bool)
    elif isinstance(template, tuple):
        ok = isinstance(value, tuple) and len(value) == len(template) and all(is_int(v, 1) for v in value)
    elif isinstance(template, float):
        ok = is_real(value)
    elif name == "rate":  # null (a tile's rate) or a probability; ConvSpace checks the range
        ok = value is None or is_real(value)
    elif name == "noise":
        ok = value in _NOISES
    elif name == "span":
        ok = value == "all" or is_int(value, 1)
    elif isinstance(template, int):
        ok = is_int(value, 0 if name == "rotate" else 1)
    else:
        ok = isinstance(value, type(template))
    if not ok:
        raise _BadChoice(f"{name}: {value!r} is not a valid choice (defaults look like {template!r})", where)


def _pairs(sides: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((h, w) for h in sides for w in sides)


@dataclass(frozen=True)
class ConvValues(_Values):
    """Value sets of the ConvNet space: ``unit`` and ``rate``, then the paper's decision order."""

    unit: tuple[str, ...] = ("tile", "element", "channel", "sample")
    rate: tuple[float | None, ...] = (None, *(round(0.02 + 0.04 * k, 2) for k in range(18)))
    size: tuple[tuple[int, int], ...] = _pairs((1, 2, 3, 4))
    stride: tuple[int, ...] = (1, 2, 3)
    repeat: tuple[int, ...] = (1, 2, 4, 8)
    rotate: tuple[int, ...] = (0, 15, 30, 45, 60, 75, 90)
    shear_x: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)
    shear_y: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)
    share_c: tuple[bool, ...] = (False, True)
    residual: tuple[bool, ...] = (False, True)


# The comb of a Transformer pattern, shared by layers and embeddings (module docstring).
_COMB_SIZES = (1, 2, 4, 6)
_COMB_STRIDES = (4, 6, 7, 8, 9, 16, 49)
_SPANS: tuple[int | str, ...] = (1, 2, 4, 8, 16, "all")
_NOISES = ("bernoulli", "gaussian")


@dataclass(frozen=True)
class TransformerValues(_Values):
    """Value sets of the Transformer space, one pattern per layer."""

    query: tuple[bool, ...] = (False, True)
    key: tuple[bool, ...] = (False, True)
    value: tuple[bool, ...] = (False, True)
    attn_output: tuple[bool, ...] = (False, True)
    ffn_hidden: tuple[bool, ...] = (False, True)
    ffn_output: tuple[bool, ...] = (False, True)
    size: tuple[int, ...] = _COMB_SIZES
    stride: tuple[int, ...] = _COMB_STRIDES
    span: tuple[int | str, ...] = _SPANS
    share_heads: tuple[bool, ...] = (False, True)
    noise: tuple[str, ...] = _NOISES


@dataclass(frozen=True)
class EmbeddingValues(_Values):
    """Value sets of the Transformer space's embedding sites, one pattern per embedding output."""

    where: ClassVar[str] = "embedding_values"

    unit: tuple[str, ...] = ("off", "feature", "token")
    size: tuple[int, ...] = _COMB_SIZES
    stride: tuple[int, ...] = _COMB_STRIDES
    span: tuple[int | str, ...] = _SPANS
    noise: tuple[str, ...] = _NOISES
