"""Learned ConvNet dropout patterns (AutoDropout; Pham & Le, AAAI 2021, arXiv 2101.01761, sec. 3.1).

One :class:`~autodropout.search_spaces.ConvLayerPattern` describes the mask of one site, acting on a
``(B, C, H, W)`` activation (the paper puts it after the BatchNorms of residual branches). Its
``unit`` says what one keep bit covers (pattern format version 3):

* ``"element"``, ``"channel"``, ``"sample"``: one Bernoulli keep bit per activation, per
  ``(sample, channel)`` or per sample, dropped with probability ``rate`` (a mask of shape
  ``(B, C, H, W)``, ``(B, C, 1, 1)`` or ``(B, 1, 1, 1)``): dropout, spatial dropout (Tompson et al.
  2015) and DropPath-like whole-sample dropping (Huang et al. 2016). Kept values are multiplied by
  ``1 / (1 - rate)``, so the output is exactly unbiased. The mask comes from the same
  :func:`~autodropout.regularizers.dropout.keep_mask` as those regularizers' modules, so a pattern
  of these units is that regularizer at that site.
* ``"tile"``: the paper's structured masks, below.

Tiles:

* **Tiles** (relative to the map since format version 2; the exact rule is in
  :mod:`autodropout.search_spaces.conv`). Along an axis of ``L`` pixels, ``t = min(repeat, L // 2)``
  runs start every ``L / t`` pixels from the offset, each ``n`` pixels long with ``n / (L / t)``
  close to ``size / (size + stride)`` (height for rows, width for columns) and ``1 <= n < L / t``;
  positions wrap around the map (mod ``H``, mod ``W``). The dropped region is the product of the row
  runs and the column runs: ``t_h x t_w`` rectangles, never none and never the whole map.
* **Offset.** One uniformly random ``(row, col)`` offset per sample, and per channel unless
  ``share_c`` (then one ``(B, 1, H, W)`` mask broadcasts over the channels).
* **Rotation and shear** about the map centre ``((H - 1) / 2, (W - 1) / 2)``. The pattern is drawn
  in source coordinates and mapped to the output by ``S @ R``: ``R`` rotates by ``rotate`` degrees
  counter-clockwise as displayed (so 90 degrees is ``torch.rot90(mask, 1, dims=(-2, -1))``) and
  ``S = [[1, shear_x], [shear_y, 1]]`` acts on ``(x, y) = (col, row)`` (``x' = x + shear_x * y``,
  ``y' = y + shear_y * x``). Each output pixel is inverse-mapped to source coordinates, rounded to
  the nearest pixel (halves up), and takes the tile membership there, wrapping mod ``H`` / ``W``.
* **Rescaling.** Kept values are multiplied by ``1 / (1 - d)``, where ``d`` is the pattern's drop
  density on the torus (row-run density times column-run density,
  :meth:`~autodropout.search_spaces.ConvLayerPattern.density`), strictly between 0 and 1 on every
  map of 2 or more pixels. Because the offset is uniform, every pixel is dropped with probability
  exactly ``d``, so the output is exactly unbiased, ``E[out] = x``, for every pattern. This is the
  paper's ``numel / sum(mask)`` in expectation, and equals it exactly for unrotated, unsheared
  patterns (a translation on the torus never changes the dropped count). A per-mask
  ``numel / sum(mask)`` was rejected: rotated or sheared masks sample the torus unevenly, so their
  dropped count varies with the offset and pixels kept mostly by sparse masks get inflated. A single
  rotated mask may still drop a whole small map, an ordinary dropout outcome, not a division by zero.
* **Maps of one pixel.** An axis of 1 pixel counts as one run covering it, so ``1 x W`` maps get
  stripes along ``W``; a ``1 x 1`` map cannot be masked with tiles without dropping it whole, so it is
  an error rather than a silent identity (the other units mask it as usual).

Tile implementation: the source coordinates of every output pixel are a fixed ``(H, W)`` map, so the
keep bit of pixel ``p`` for offset ``(oy, ox)`` is ``rows[oy, p] | cols[ox, p]`` with two small
uint8 tables (``H x HW`` and ``W x HW``) cached per map size, pattern geometry and device. A mask
is then two row gathers, an ``|`` and one scaled conversion to the input's dtype: no loop over
samples or channels, ``O(B * C)`` random numbers (``O(B)`` with ``share_c``), and autograd saves
only the mask for backward (``(B, 1, H, W)`` with ``share_c``). Saving the uint8 mask instead
(a custom autograd function) would cut that memory by 4x for per-channel float32 masks but made
forward + backward about 25% slower on CPU, so the mask stays in the input's dtype, as dropout's.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import torch
from torch import Tensor

from autodropout.core.checks import is_int, is_real
from autodropout.regularizers._pattern_masks import PatternModule, fixed_offsets, mask_request, pattern_layers
from autodropout.regularizers.dropout import check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register
from autodropout.search_spaces import ConvLayerPattern, Pattern
from autodropout.search_spaces.conv import TILE, UNITS, axis_tiling

#: Axes of a ``(B, C, H, W)`` activation that one keep bit of each non-tile unit spans.
SHARED_AXES: dict[str, tuple[int, ...]] = {"element": (), "channel": (2, 3), "sample": (1, 2, 3)}


def check_conv_pattern(pattern: object) -> ConvLayerPattern:
    """Return ``pattern`` if it describes a usable mask, else raise naming the offending field."""
    if not isinstance(pattern, ConvLayerPattern):
        raise TypeError(f"pattern: expected a ConvLayerPattern or None, got {type(pattern).__name__}")
    if pattern.unit not in UNITS:
        raise ValueError(f"pattern.unit: expected one of {list(UNITS)}, got {pattern.unit!r}")
    if pattern.unit == TILE and pattern.rate is not None:
        raise ValueError(f"pattern.rate: a tile pattern takes None (its tiles set the density), got {pattern.rate!r}")
    if pattern.unit != TILE:
        check_rate(pattern.rate, f"pattern.rate (unit {pattern.unit!r})")
    size = pattern.size
    if not (isinstance(size, tuple) and len(size) == 2 and all(is_int(s, 1) for s in size)):
        raise ValueError(f"pattern.size: expected a (height, width) pair of ints >= 1, got {size!r}")
    for name in ("stride", "repeat"):
        if not is_int(getattr(pattern, name), 1):
            raise ValueError(f"pattern.{name}: expected an int >= 1, got {getattr(pattern, name)!r}")
    for name in ("rotate", "shear_x", "shear_y"):
        if not is_real(getattr(pattern, name)):
            raise ValueError(f"pattern.{name}: expected a finite number, got {getattr(pattern, name)!r}")
    if math.isclose(pattern.shear_x * pattern.shear_y, 1.0):
        raise ValueError(
            f"pattern.shear_x, pattern.shear_y: shear_x * shear_y must not be 1 (the shear is not "
            f"invertible), got {pattern.shear_x!r} and {pattern.shear_y!r}"
        )
    for name in ("share_c", "residual"):
        if not isinstance(getattr(pattern, name), bool):
            raise ValueError(f"pattern.{name}: expected a bool, got {getattr(pattern, name)!r}")
    return pattern


def _runs(length: int, size: int, stride: int, repeat: int) -> Tensor:
    """``(length,)`` bool: position ``u`` (relative to the offset) lies in a run of
    :func:`~autodropout.search_spaces.conv.axis_tiling`, positions taken mod ``length``."""
    starts, run = axis_tiling(length, size, stride, repeat)
    u = torch.arange(length).unsqueeze(1)
    return ((u - torch.tensor(starts).unsqueeze(0)).remainder(length) < run).any(dim=1)


def _source_coords(
    height: int, width: int, rotate: float, shear_x: float, shear_y: float
) -> tuple[Tensor, Tensor]:
    """Integer source (row, col) of every output pixel, each ``(H, W)`` int64, before wrapping."""
    cy, cx = (height - 1) / 2, (width - 1) / 2
    y = torch.arange(height, dtype=torch.float64).unsqueeze(1) - cy
    x = torch.arange(width, dtype=torch.float64).unsqueeze(0) - cx
    det = 1.0 - shear_x * shear_y
    x, y = (x - shear_x * y) / det, (y - shear_y * x) / det
    theta = math.radians(rotate)
    cos, sin = math.cos(theta), math.sin(theta)
    src_x, src_y = x * cos - y * sin, x * sin + y * cos
    return _nearest(src_y + cy), _nearest(src_x + cx)


def _nearest(v: Tensor) -> Tensor:
    # Rounding to 1e-9 first makes exact halves (cos 60 is 0.5000000000000001) round up everywhere.
    return torch.floor(torch.round(v, decimals=9) + 0.5).long()


@lru_cache(maxsize=64)
def _keep_tables(
    height: int, width: int, size: tuple[int, int], stride: int, repeat: int,
    rotate: float, shear_x: float, shear_y: float, device: torch.device,
) -> tuple[Tensor, Tensor, float]:
    """``rows (H, H*W)``, ``cols (W, H*W)`` uint8 and the drop density ``d``.

    Output pixel ``p`` (flattened) is kept for offset ``(oy, ox)`` iff ``rows[oy, p] | cols[ox, p]``
    (it is dropped iff its source row and its source column both lie in runs).
    """
    row_runs = _runs(height, size[0], stride, repeat)
    col_runs = _runs(width, size[1], stride, repeat)
    src_row, src_col = _source_coords(height, width, rotate, shear_x, shear_y)
    rows = ~row_runs[(src_row.reshape(1, -1) - torch.arange(height).unsqueeze(1)).remainder(height)]
    cols = ~col_runs[(src_col.reshape(1, -1) - torch.arange(width).unsqueeze(1)).remainder(width)]
    density = row_runs.double().mean().item() * col_runs.double().mean().item()
    # uint8 rather than bool: index_select copies uint8 rows with a fast path that bool lacks.
    return rows.to(device, torch.uint8), cols.to(device, torch.uint8), density


def conv_pattern_mask(
    shape: Sequence[int],
    pattern: ConvLayerPattern,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    offsets: Tensor | None = None,
) -> Tensor:
    """The multiplier that :func:`conv_pattern` applies to a ``(B, C, H, W)`` activation.

    Args:
        shape: ``(B, C, H, W)`` of the activation; ``H * W >= 2``.
        pattern: the site's pattern (see the module docstring for the geometry).
        generator: source of the random offsets; must live on ``device``. Defaults to torch's global
            generator.
        device, dtype: of the mask (the activation's); default CPU and ``torch.get_default_dtype()``.
        offsets: tile patterns only: fixes the offsets instead of drawing them: an integer tensor
            ``(B, C, 2)``, or ``(B, 1, 2)`` with ``share_c``, of ``(row, col)`` offsets in
            ``[0, H) x [0, W)``: tile ``(0, 0)`` starts at that source pixel.

    Returns:
        ``0`` where dropped and ``1 / (1 - d)`` where kept (``d``: ``pattern.density(H, W)``), of
        shape ``(B, C, H, W)`` (tiles; ``(B, 1, H, W)`` with ``share_c``; unit ``"element"``),
        ``(B, C, 1, 1)`` (``"channel"``) or ``(B, 1, 1, 1)`` (``"sample"``).
    """
    check_conv_pattern(pattern)
    dims, device, dtype = mask_request(shape, (4,), "(B, C, H, W)", device, dtype)
    if offsets is not None and pattern.unit != TILE:
        raise ValueError(f"offsets: only tile patterns have offsets, this one has unit {pattern.unit!r}")
    if offsets is not None:
        batch, channels, height, width = dims
        offsets = fixed_offsets(
            offsets, (batch, 1 if pattern.share_c else channels, 2), torch.tensor([height, width]),
            f"(row, col) values must lie in [0, {height}) x [0, {width})", device,
        )
    return _mask(dims, pattern, generator, device, dtype, offsets)


@torch.no_grad()
def _mask(
    shape: Sequence[int], pattern: ConvLayerPattern, generator: torch.Generator | None,
    device: torch.device, dtype: torch.dtype, offsets: Tensor | None = None,
) -> Tensor:
    """:func:`conv_pattern_mask` for an already validated ``pattern`` (modules validate it once)."""
    if pattern.unit != TILE:
        # keep_mask reads only the shape, device and dtype of its input: a zero-stride view stands in.
        like = torch.empty((), device=device, dtype=dtype).expand(*shape)
        return keep_mask(like, pattern.rate, SHARED_AXES[pattern.unit], generator)
    batch, channels, height, width = shape
    if height * width == 1:
        raise ValueError("conv pattern: a 1x1 map cannot be masked without dropping it whole")
    maps = 1 if pattern.share_c else channels
    rows, cols, density = _keep_tables(
        height, width, pattern.size, pattern.stride, pattern.repeat,
        float(pattern.rotate), float(pattern.shear_x), float(pattern.shear_y), device,
    )
    if offsets is None:
        flat = torch.randint(height * width, (batch * maps,), generator=generator, device=device)
        off_row, off_col = flat // width, flat % width
    else:
        off_row, off_col = offsets.reshape(-1, 2).unbind(1)
    keep = rows.index_select(0, off_row)
    keep |= cols.index_select(0, off_col)
    return keep.view(batch, maps, height, width).to(dtype).mul_(1.0 / (1.0 - density))


def conv_pattern(
    x: Tensor,
    pattern: ConvLayerPattern | None,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply a learned ConvNet pattern to ``x`` of shape ``(B, C, H, W)``; same shape out.

    The identity when not ``training`` or when ``pattern`` is ``None``.
    """
    if not training or pattern is None:
        return x
    return _apply(x, check_conv_pattern(pattern), generator)


def _apply(x: Tensor, pattern: ConvLayerPattern, generator: torch.Generator | None) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"x: conv_pattern expects (B, C, H, W), got shape {tuple(x.shape)}")
    return x * _mask(x.shape, pattern, generator, x.device, x.dtype)


class ConvPatternDropout(PatternModule):
    """Module form of :func:`conv_pattern` for one site (AutoDropout, Pham & Le 2021).

    Args:
        pattern: the site's :class:`~autodropout.search_spaces.ConvLayerPattern`, validated here once
            (the forward pass does not check it again; :meth:`of_valid` takes a validated one);
            ``None`` is the identity.

    Attributes:
        masks_residual: ``pattern.residual``: the WideResNet block also applies this module to its
            shortcut path when true.
    """

    check = staticmethod(check_conv_pattern)
    apply = staticmethod(_apply)

    @property
    def masks_residual(self) -> bool:
        return bool(self.pattern is not None and self.pattern.residual)

    def describe(self, pattern: ConvLayerPattern) -> str:
        if pattern.unit != TILE:
            return f"unit={pattern.unit!r}, rate={pattern.rate}, residual={pattern.residual}"
        return (
            f"unit='tile', size={pattern.size}, stride={pattern.stride}, repeat={pattern.repeat}, "
            f"rotate={pattern.rotate}, "
            f"shear=({pattern.shear_x}, {pattern.shear_y}), share_c={pattern.share_c}, residual={pattern.residual}"
        )


def conv_site_factories(
    pattern: Pattern | Sequence[ConvLayerPattern],
) -> list[Callable[[], ConvPatternDropout]]:
    """One zero-argument factory per site, in site order, each building that site's module.

    ``pattern`` is a ``"conv"`` :class:`~autodropout.search_spaces.Pattern`, whose sites its space
    validated where it entered, or a list of :class:`~autodropout.search_spaces.ConvLayerPattern`,
    checked here (models take one factory per site).
    """
    layers = pattern_layers(pattern, "conv", ConvLayerPattern, check_conv_pattern)
    return [partial(ConvPatternDropout.of_valid, layer) for layer in layers]


register(
    RegularizerInfo(
        name="conv_pattern",
        factory=ConvPatternDropout,
        reference="Pham & Le, AAAI 2021 (arXiv 2101.01761)",
        rate_param=None,
        identity_params={"pattern": None},
        example_params={
            "pattern": ConvLayerPattern(
                unit="tile", rate=None, size=(2, 2), stride=2, repeat=2, rotate=30, shear_x=0.15, shear_y=0.0,
                share_c=False, residual=False,
            )
        },
        input_kinds=("conv",),
    )
)
