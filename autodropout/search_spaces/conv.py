"""The ConvNet search space: 8 decisions per site in the paper's order (Pham & Le 2021, sec. 3.1)."""
from __future__ import annotations

from dataclasses import dataclass

from autodropout.search_spaces.space import SearchSpace
from autodropout.search_spaces.values import ConvValues


@dataclass(frozen=True)
class ConvLayerPattern:
    """The pattern of one site: a ``repeat x repeat`` grid of ``size`` rectangles with pitch
    ``size + stride``, rotated by ``rotate`` degrees and sheared by ``shear_x``/``shear_y`` about the
    map centre; ``share_c`` shares one random offset across channels; ``residual`` also masks the
    block's shortcut. Masks act on (B, C, H, W) activations (see ``regularizers.pattern_conv``)."""

    size: tuple[int, int]
    stride: int
    repeat: int
    rotate: int
    shear_x: float
    shear_y: float
    share_c: bool
    residual: bool


class ConvSpace(SearchSpace):
    """``num_sites`` ConvNet patterns; decisions ``size, stride, repeat, rotate, shear_x, shear_y,
    share_c, residual`` per site (value sets: :class:`ConvValues`)."""

    kind = "conv"
    layer_type = ConvLayerPattern
    values_type = ConvValues
