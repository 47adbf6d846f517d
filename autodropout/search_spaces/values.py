"""The value set of every decision, in one place, with the reasoning.

The paper (Pham & Le, AAAI 2021, arXiv 2101.01761) names the decisions but never published their
value sets, so these are ours. Each is a small frozen dataclass; pass your own to ``ConvSpace`` /
``TransformerSpace`` (or a ``values:`` mapping in an experiment YAML) to search a different space.

ConvNet pattern (sites are the BatchNorm outputs of residual branches; feature maps here are
32x32 / 16x16 / 8x8 on CIFAR and 16x16 / 8x8 / 4x4 on the embedded digits task):

* ``size`` (height, width) of the basic rectangle, each side in {1, 2, 3, 5}: 1 keeps stripes and
  single-pixel holes possible; 5 is the largest that still leaves room for a stride on an 8x8 map.
  Both orientations of every rectangle are listed so the controller need not rely on ``rotate``.
* ``stride`` in {1, 2, 3, 4}: the gap between tiles, so the pitch is ``size + stride`` and tiles
  never merge into a full map (DropBlock and SpatialDropout sit at the extremes).
* ``repeat`` in {1, 2, 3, 4}: a ``repeat x repeat`` grid of tiles. 1 is a DropBlock-like single
  block; 4 tiles of pitch >= 2 cover a 8x8 map, so larger values only wrap onto themselves.
* ``rotate`` in {0, 15, 30, 45, 60, 75, 90} degrees: the rectangle set is symmetric under 90
  degrees, and 15-degree steps are the coarsest that make diagonal stripes distinct on 8x8 maps.
* ``shear_x``, ``shear_y`` in {-0.3, -0.15, 0, 0.15, 0.3}: beyond |0.3| a 5-wide tile sheared over
  an 8x8 map degenerates into a diagonal line.
* ``share_c``: one pattern for all channels vs an independent offset per channel.
* ``residual``: also apply the pattern to the block's shortcut path.

Transformer pattern (one per layer; hidden states (B, T, C), per-head tensors (B, heads, T, d)):

* ``query``, ``key``, ``value``, ``attn_output``, ``ffn_hidden``, ``ffn_output``: whether the layer's
  pattern is applied at that sublayer (the paper lets one pattern act at several sublayers).
* ``size`` in {1, 2, 4, 8, 16} hidden units dropped together and ``stride`` in {1, 2, 4, 8, 16}
  kept units between them: the drop rate along the hidden axis is ``size / (size + stride)``, from
  1/17 to 16/17, covering what people use by hand (0.1-0.3) with room on both sides.
* ``span`` in {1, 2, 4, 8, 16, "all"} consecutive tokens share one mask; "all" is variational
  dropout's mask shared over the whole sequence (Gal & Ghahramani 2016).
* ``share_heads``: heads share the mask of a per-head tensor, or draw their own.
* ``noise``: "bernoulli" zeros, or "gaussian" multiplicative N(1, size/stride) noise shared by the
  same blocks (same variance as the Bernoulli mask of equal rate; Srivastava et al. 2014, sec. 10).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


class _Values:
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Any:
        """Build from JSON/YAML lists; unknown keys and empty or duplicate lists name the key."""
        from autodropout.search_spaces.space import PatternError

        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise PatternError(f"values: unknown key {unknown[0]!r} (expected one of {names})")
        defaults = cls()
        out = {}
        for name in names:
            if name not in mapping:
                continue
            raw = mapping[name]
            if not isinstance(raw, (list, tuple)) or not raw:
                raise PatternError(f"values.{name}: expected a non-empty list, got {raw!r}")
            template = getattr(defaults, name)[0]
            choices = tuple(tuple(v) if isinstance(v, list) else v for v in raw)
            for v in choices:
                _check_like(name, v, template)
            if len(set(choices)) != len(choices):
                raise PatternError(f"values.{name}: duplicate choices in {list(raw)}")
            out[name] = choices
        return cls(**out)


def _check_like(name: str, value: Any, template: Any) -> None:
    from autodropout.search_spaces.space import PatternError

    ok: bool
    if isinstance(template, bool):
        ok = isinstance(value, bool)
    elif isinstance(template, tuple):
        ok = (
            isinstance(value, tuple)
            and len(value) == len(template)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        )
    elif isinstance(template, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif name == "span":
        ok = value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    elif isinstance(template, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if name == "rotate" else value >= 1)
    else:
        ok = isinstance(value, type(template))
    if not ok:
        raise PatternError(f"values.{name}: {value!r} is not a valid choice (defaults look like {template!r})")


def _pairs(sides: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((h, w) for h in sides for w in sides)


@dataclass(frozen=True)
class ConvValues(_Values):
    """Value sets of the ConvNet space, in the paper's decision order."""

    size: tuple[tuple[int, int], ...] = _pairs((1, 2, 3, 5))
    stride: tuple[int, ...] = (1, 2, 3, 4)
    repeat: tuple[int, ...] = (1, 2, 3, 4)
    rotate: tuple[int, ...] = (0, 15, 30, 45, 60, 75, 90)
    shear_x: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)
    shear_y: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)
    share_c: tuple[bool, ...] = (False, True)
    residual: tuple[bool, ...] = (False, True)


@dataclass(frozen=True)
class TransformerValues(_Values):
    """Value sets of the Transformer space, one pattern per layer."""

    query: tuple[bool, ...] = (False, True)
    key: tuple[bool, ...] = (False, True)
    value: tuple[bool, ...] = (False, True)
    attn_output: tuple[bool, ...] = (False, True)
    ffn_hidden: tuple[bool, ...] = (False, True)
    ffn_output: tuple[bool, ...] = (False, True)
    size: tuple[int, ...] = (1, 2, 4, 8, 16)
    stride: tuple[int, ...] = (1, 2, 4, 8, 16)
    span: tuple[int | str, ...] = (1, 2, 4, 8, 16, "all")
    share_heads: tuple[bool, ...] = (False, True)
    noise: tuple[str, ...] = ("bernoulli", "gaussian")
