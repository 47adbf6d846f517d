"""The ConvNet search space: 8 decisions per site in the paper's order (Pham & Le 2021, sec. 3.1).

Geometry (pattern format version 2), per axis of ``L`` pixels, before the random offset, rotation
and shear that ``regularizers.pattern_conv`` adds:

* ``repeat`` tiles per axis, capped at ``L // 2`` so that every period holds at least 2 pixels
  (one dropped, one kept): ``t = min(repeat, L // 2)``. Tile ``k`` starts at pixel ``k * L // t``,
  so the period is ``P = L / t`` pixels (``floor(P)`` or ``ceil(P)`` when ``t`` does not divide ``L``).
* Each tile drops a run of ``n`` consecutive pixels, a fraction ``f = size / (size + stride)`` of its
  period: ``size`` and ``stride`` count units of the period, not pixels. ``n`` is ``f * P`` rounded
  toward half the period (up when ``f < 1/2``, down when ``f > 1/2``, to the nearest when
  ``f = 1/2``, ties down), then clamped to ``1 <= n <= floor(P) - 1``: never nothing, never a whole
  period, and runs never touch.
* The axis' drop density is exactly ``t * n / L``; the map's is the product of the two axes' (the
  dropped region is the product of the row runs and the column runs), so it is never 0 and never 1.
  Rounding toward half the period is what bounds it: with every per-axis ``f`` in ``[1/4, 3/4]``
  (the default value sets) the axis density stays in ``[1/4, 3/4]`` at every ``L >= 2``, so the map
  density stays in ``[1/16, 9/16]`` at every resolution from 2x2 up (``docs/search_spaces.md`` has
  the proof and the measured band per resolution; nearest rounding would leave it on small maps).
* An axis of a single pixel has nothing to tile: it counts as one run covering it (density 1), so a
  ``1 x W`` map is striped along ``W`` only; a ``1 x 1`` map cannot be masked at all.

Because the geometry is relative to the map, the same tokens give the same picture, and about the
same density, on a 4x4 and a 64x64 map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from autodropout.search_spaces.space import SearchSpace
from autodropout.search_spaces.values import ConvValues

#: Fewest pixels per tile period along an axis (one dropped, one kept); caps ``repeat`` at ``L // 2``.
MIN_PERIOD = 2


def axis_tiling(length: int, size: int, stride: int, repeat: int) -> tuple[tuple[int, ...], int]:
    """Run starts and run length along one axis of ``length`` pixels (module docstring's rule).

    Args:
        length: pixels along the axis (``>= 1``).
        size, stride: the dropped and kept parts of a period, in units of the period (``>= 1``).
        repeat: tiles per axis before the cap (``>= 1``).

    Returns:
        ``(starts, run)``: pixel ``u`` (relative to the offset) is dropped along this axis iff
        ``(u - s) mod length < run`` for some ``s`` in ``starts``; runs never overlap, so the axis'
        density is ``len(starts) * run / length``.
    """
    if length == 1:
        return (0,), 1
    tiles = min(repeat, length // MIN_PERIOD)
    target = Fraction(size * length, (size + stride) * tiles)  # f * P pixels, exactly
    if size < stride:  # f < 1/2
        run = math.ceil(target)
    elif size > stride:  # f > 1/2
        run = math.floor(target)
    else:  # f = 1/2: nearest, ties down
        run = math.ceil(target - Fraction(1, 2))
    run = max(1, min(run, length // tiles - 1))
    return tuple(k * length // tiles for k in range(tiles)), run


def axis_density(length: int, size: int, stride: int, repeat: int) -> Fraction:
    """Exact fraction of an axis of ``length`` pixels that the runs cover (see :func:`axis_tiling`)."""
    starts, run = axis_tiling(length, size, stride, repeat)
    return Fraction(len(starts) * run, length)


@dataclass(frozen=True)
class ConvLayerPattern:
    """The pattern of one site (format version 2; the module docstring has the exact geometry).

    ``repeat x repeat`` tiles spread evenly over the map (at most ``L // 2`` per axis); each drops a
    rectangle covering ``size[0] / (size[0] + stride)`` of its period in height and
    ``size[1] / (size[1] + stride)`` in width; the grid is placed at a uniformly random offset,
    rotated by ``rotate`` degrees and sheared by ``shear_x``/``shear_y`` about the map centre;
    ``share_c`` shares one offset across channels; ``residual`` also masks the block's shortcut.
    Masks act on (B, C, H, W) activations (see ``regularizers.pattern_conv``).
    """

    size: tuple[int, int]
    stride: int
    repeat: int
    rotate: int
    shear_x: float
    shear_y: float
    share_c: bool
    residual: bool

    def density(self, height: int, width: int) -> Fraction:
        """Exact expected drop density on a ``height x width`` map: every pixel is dropped with this
        probability (the offset is uniform on the torus, so rotation and shear do not change it)."""
        return (
            axis_density(height, self.size[0], self.stride, self.repeat)
            * axis_density(width, self.size[1], self.stride, self.repeat)
        )


class ConvSpace(SearchSpace):
    """``num_sites`` ConvNet patterns; decisions ``size, stride, repeat, rotate, shear_x, shear_y,
    share_c, residual`` per site (value sets: :class:`ConvValues`)."""

    kind = "conv"
    layer_type = ConvLayerPattern
    values_type = ConvValues
