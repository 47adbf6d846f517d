"""The ConvNet search space: per site a ``unit`` and a ``rate``, then the paper's 8 decisions
(Pham & Le 2021, sec. 3.1).

Units (pattern format version 3), what one keep bit covers in a ``(B, C, H, W)`` activation:

* ``"tile"``: the paper's structured geometry below; ``rate`` is null (the tiles set the density).
* ``"element"``: single activations, each dropped with probability ``rate`` (as ``nn.Dropout``).
* ``"channel"``: whole channels of a sample (spatial dropout, Tompson et al. 2015).
* ``"sample"``: the whole ``(C, H, W)`` activation of a sample (DropPath-like: Huang et al. 2016,
  timm's ``drop_path``).

The last three are the hand-designed regularizers a study compares with, so the space contains them
(issue 20). They read no geometry: :meth:`ConvSpace.choice_mask` forces ``size`` ... ``share_c`` to
their first choice for them, and ``rate`` to null for tiles, so every pattern has one encoding.
``residual`` (also mask the block's shortcut) is free for every unit.

Tile geometry (unchanged since format version 2), per axis of ``L`` pixels, before the random
offset, rotation and shear that ``regularizers.pattern_conv`` adds:

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
  Rounding toward half the period is what bounds it: with every per-axis ``f`` in ``[1/4, 4/5]``
  (the default value sets) the axis density stays in ``[1/4, 4/5]`` at every ``L >= 2``, so the map
  density stays in ``[1/16, 16/25]`` at every resolution from 2x2 up (``docs/search_spaces.md`` has
  the proof and the measured band per resolution; nearest rounding would leave it on small maps).
* An axis of a single pixel has nothing to tile: it counts as one run covering it (density 1), so a
  ``1 x W`` map is striped along ``W`` only; a ``1 x 1`` map cannot be masked with tiles at all.

Because the geometry is relative to the map, the same tokens give the same picture, and about the
same density, on a 4x4 and a 64x64 map.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from autodropout.core.checks import is_real
from autodropout.core.errors import PatternError
from autodropout.search_spaces.space import SearchSpace, same_value
from autodropout.search_spaces.values import ConvValues

#: Fewest pixels per tile period along an axis (one dropped, one kept); caps ``repeat`` at ``L // 2``.
MIN_PERIOD = 2
#: The unit of the paper's structured geometry; the only one that reads :data:`GEOMETRY`.
TILE = "tile"
#: Every unit a keep bit can cover (the default value set offers them all).
UNITS: tuple[str, ...] = ConvValues().unit
#: Decisions only tiles read: the other units take their first choice.
GEOMETRY: tuple[str, ...] = ("size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c")


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
    """The pattern of one site (format version 3; the module docstring has the exact geometry).

    ``unit`` says what one keep bit covers: ``"tile"`` (``rate`` null) is the paper's geometry:
    ``repeat x repeat`` tiles spread evenly over the map (at most ``L // 2`` per axis); each drops a
    rectangle covering ``size[0] / (size[0] + stride)`` of its period in height and
    ``size[1] / (size[1] + stride)`` in width; the grid is placed at a uniformly random offset,
    rotated by ``rotate`` degrees and sheared by ``shear_x``/``shear_y`` about the map centre;
    ``share_c`` shares one offset across channels. ``"element"``, ``"channel"`` and ``"sample"`` drop
    single activations, whole channels or whole samples with probability ``rate`` and ignore the
    geometry fields. ``residual`` also masks the block's shortcut. Masks act on (B, C, H, W)
    activations (see ``regularizers.pattern_conv``).
    """

    unit: str
    rate: float | None
    size: tuple[int, int]
    stride: int
    repeat: int
    rotate: int
    shear_x: float
    shear_y: float
    share_c: bool
    residual: bool

    def density(self, height: int, width: int) -> Fraction:
        """Exact expected drop rate on a ``height x width`` map: every activation is dropped with this
        probability. ``rate`` for the non-tile units; for tiles the geometry's density (the offset is
        uniform on the torus, so rotation and shear do not change it)."""
        if self.unit != TILE:
            return Fraction(self.rate)
        return (
            axis_density(height, self.size[0], self.stride, self.repeat)
            * axis_density(width, self.size[1], self.stride, self.repeat)
        )


Mask = tuple[bool, ...] | None


class ConvSpace(SearchSpace):
    """``num_sites`` ConvNet patterns; decisions ``unit, rate, size, stride, repeat, rotate, shear_x,
    shear_y, share_c, residual`` per site (value sets: :class:`ConvValues`).

    :meth:`choice_mask` gives every pattern exactly one token sequence: after ``"tile"`` only a null
    ``rate`` is allowed; after another unit only a numeric ``rate`` and the first choice of every
    decision in :data:`GEOMETRY`. A unit the value sets cannot complete (``"tile"`` without null among
    the rates, the others without a number) is forbidden; value sets that leave no unit are an error.
    """

    kind = "conv"
    layer_type = ConvLayerPattern
    values_type = ConvValues
    #: Fields that the version-2 reader adds to the layers of old files (the paper's 8 fields only),
    #: so that they keep their meaning.
    v2_upgrade: ClassVar[Mapping[str, Any]] = {"unit": TILE, "rate": None}

    def __init__(self, num_sites: int, values: Any = None) -> None:
        super().__init__(num_sites, values)
        types = dict(self.decision_types)
        for unit in types["unit"]:
            if unit not in UNITS:
                raise PatternError(f"values.unit: {unit!r} is not a unit (expected some of {list(UNITS)})")
        for rate in types["rate"]:
            if rate is not None and not is_real(rate, 0.0, 1.0, low_open=True, high_open=True):
                raise PatternError(f"values.rate: {rate!r} is neither null nor a drop probability in (0, 1)")
        for shear_x in types["shear_x"]:
            for shear_y in types["shear_y"]:
                if math.isclose(shear_x * shear_y, 1.0):
                    raise PatternError(f"values.shear_x, values.shear_y: {shear_x!r} and {shear_y!r} multiply to 1 "
                                       "(that shear is not invertible)")
        self._units: tuple[str, ...] = types["unit"]
        # Per unit, the mask of each later decision of its site, in token order.
        self._rules: dict[str, tuple[Mask, ...]] = {unit: self._unit_rules(unit) for unit in self._units}
        usable = tuple(all(mask is None or any(mask) for mask in self._rules[unit]) for unit in self._units)
        if not any(usable):
            raise PatternError("values: no unit can be completed: 'tile' needs null among the rates, "
                               "the other units a drop probability")
        self._unit_mask: Mask = None if all(usable) else usable

    def _unit_rules(self, unit: str) -> tuple[Mask, ...]:
        rules: list[Mask] = []
        for name, choices in self.decision_types[1:]:
            if name == "rate":
                allowed = tuple((choice is None) == (unit == TILE) for choice in choices)
            elif name in GEOMETRY and unit != TILE:
                allowed = tuple(index == 0 for index in range(len(choices)))
            else:
                allowed = ()
            rules.append(None if all(allowed) else allowed)
        return tuple(rules)

    def choice_mask(self, prefix: Sequence[int]) -> tuple[bool, ...] | None:
        offset = len(prefix) % self.tokens_per_site
        if offset == 0:
            return self._unit_mask
        return self._rules[self._units[prefix[len(prefix) - offset]]][offset - 1]

    def _layer_problem(self, layer: Any) -> str | None:
        for (name, choices), mask in zip(self.decision_types[1:], self._rules[layer.unit]):
            value = getattr(layer, name)
            if mask is None or mask[next(i for i, c in enumerate(choices) if same_value(value, c))]:
                continue
            if name != "rate":
                return (f"unit {layer.unit!r} does not use field {name!r}, which must then be its first "
                        f"choice {json.dumps(choices[0])} (one encoding per pattern), got {json.dumps(value)}")
            if layer.unit == TILE:
                return f"unit 'tile' takes rate null (its tiles set the density), got {json.dumps(value)}"
            return f"unit {layer.unit!r} needs a rate (a drop probability), got null"
        return None

    @property
    def layers_per_site(self) -> int:
        return sum(
            math.prod(len(choices) if mask is None else sum(mask)
                      for (_, choices), mask in zip(self.decision_types[1:], self._rules[unit]))
            for unit in self._units
        )
