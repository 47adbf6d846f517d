"""Learned ConvNet dropout patterns (AutoDropout; Pham & Le, AAAI 2021, arXiv 2101.01761, sec. 3.1).

One :class:`~autodropout.search_spaces.ConvLayerPattern` describes the mask of one site, acting on a
``(B, C, H, W)`` activation (the paper puts it after the BatchNorms of residual branches):

* **Tiles.** Along each axis, ``repeat`` runs of ``size`` pixels (height for rows, width for columns)
  start every ``size + stride`` pixels from the offset. Positions wrap around the map (mod ``H``,
  mod ``W``) and the union is taken, so a grid longer than the map wraps onto itself; the dropped
  region is the product of the row runs and the column runs: ``repeat x repeat`` rectangles.
* **Offset.** One uniformly random ``(row, col)`` offset per sample, and per channel unless
  ``share_c`` (then one ``(B, 1, H, W)`` mask broadcasts over the channels).
* **Rotation and shear** about the map centre ``((H - 1) / 2, (W - 1) / 2)``. The pattern is drawn
  in source coordinates and mapped to the output by ``S @ R``: ``R`` rotates by ``rotate`` degrees
  counter-clockwise as displayed (so 90 degrees is ``torch.rot90(mask, 1, dims=(-2, -1))``) and
  ``S = [[1, shear_x], [shear_y, 1]]`` acts on ``(x, y) = (col, row)`` (``x' = x + shear_x * y``,
  ``y' = y + shear_y * x``). Each output pixel is inverse-mapped to source coordinates, rounded to
  the nearest pixel (halves up), and takes the tile membership there, wrapping mod ``H`` / ``W``.
* **Rescaling.** Kept values are multiplied by ``1 / (1 - d)``, where ``d`` is the pattern's drop
  density on the torus (row-run density times column-run density). Because the offset is uniform,
  every pixel is dropped with probability exactly ``d``, so the output is exactly unbiased,
  ``E[out] = x``, for every pattern. This is the paper's ``numel / sum(mask)`` in expectation, and
  equals it exactly for unrotated, unsheared patterns (a translation on the torus never changes the
  dropped count). A per-mask ``numel / sum(mask)`` was rejected: rotated or sheared masks sample
  the torus unevenly, so their dropped count varies with the offset and pixels kept mostly by
  sparse masks get inflated. Over this project's default search space (``ConvValues``), per-map
  normalisation biases some pixel's expectation by more than 10% for 5.8% of the patterns on 8x8
  maps (worst 300%; 87% on 16x16). A single mask may still drop a whole map (rotated patterns on
  small maps), which is an ordinary dropout outcome here, not a division by zero.
* **Everything dropped.** If ``d == 1`` (e.g. a 5x5 tile on a 4x4 map, which transferred patterns
  can meet), no finite rescaling exists, so the pattern falls back to the identity (no drop).

Implementation: the source coordinates of every output pixel are a fixed ``(H, W)`` map, so the
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
from functools import lru_cache, partial
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from autodropout.regularizers.registry import RegularizerInfo, register
from autodropout.search_spaces import ConvLayerPattern, Pattern

_INT_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def is_int(value: object, minimum: int) -> bool:
    """``value`` is an ``int`` (not a ``bool``) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_offsets(offsets: object, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """``offsets`` as an int64 tensor on ``device`` if it is an integer tensor of ``shape``."""
    if not isinstance(offsets, Tensor) or offsets.shape != shape or offsets.dtype not in _INT_DTYPES:
        got = (
            f"{offsets.dtype} {tuple(offsets.shape)}" if isinstance(offsets, Tensor) else type(offsets).__name__
        )
        raise ValueError(f"offsets: expected an integer tensor of shape {shape}, got {got}")
    return offsets.to(device=device, dtype=torch.long)


def check_conv_pattern(pattern: object) -> ConvLayerPattern:
    """Return ``pattern`` if it describes a usable mask, else raise naming the offending field."""
    if not isinstance(pattern, ConvLayerPattern):
        raise TypeError(f"pattern: expected a ConvLayerPattern or None, got {type(pattern).__name__}")
    size = pattern.size
    if not (isinstance(size, tuple) and len(size) == 2 and all(is_int(s, 1) for s in size)):
        raise ValueError(f"pattern.size: expected a (height, width) pair of ints >= 1, got {size!r}")
    for name in ("stride", "repeat"):
        if not is_int(getattr(pattern, name), 1):
            raise ValueError(f"pattern.{name}: expected an int >= 1, got {getattr(pattern, name)!r}")
    for name in ("rotate", "shear_x", "shear_y"):
        if not _is_real(getattr(pattern, name)):
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


def _runs(length: int, size: int, pitch: int, repeat: int) -> Tensor:
    """``(length,)`` bool: position ``u`` (relative to the offset) lies in one of the ``repeat`` runs
    of ``size`` starting at ``k * pitch``, positions taken mod ``length``."""
    u = torch.arange(length).unsqueeze(1)
    starts = torch.arange(repeat).unsqueeze(0) * pitch
    return ((u - starts).remainder(length) < size).any(dim=1)


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
    row_runs = _runs(height, size[0], size[0] + stride, repeat)
    col_runs = _runs(width, size[1], size[1] + stride, repeat)
    src_row, src_col = _source_coords(height, width, rotate, shear_x, shear_y)
    rows = ~row_runs[(src_row.reshape(1, -1) - torch.arange(height).unsqueeze(1)).remainder(height)]
    cols = ~col_runs[(src_col.reshape(1, -1) - torch.arange(width).unsqueeze(1)).remainder(width)]
    density = row_runs.double().mean().item() * col_runs.double().mean().item()
    # uint8 rather than bool: index_select copies uint8 rows with a fast path that bool lacks.
    return rows.to(device, torch.uint8), cols.to(device, torch.uint8), density


@torch.no_grad()
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
        shape: ``(B, C, H, W)`` of the activation.
        pattern: the site's pattern (see the module docstring for the geometry).
        generator: source of the random offsets; must live on ``device``. Defaults to torch's global
            generator.
        device, dtype: of the mask (the activation's); default CPU and ``torch.get_default_dtype()``.
        offsets: fixes the offsets instead of drawing them: an integer tensor ``(B, C, 2)``, or
            ``(B, 1, 2)`` with ``share_c``, of ``(row, col)`` offsets in ``[0, H) x [0, W)``: tile
            ``(0, 0)`` starts at that source pixel.

    Returns:
        ``(B, C, H, W)``, or ``(B, 1, H, W)`` with ``share_c``: ``0`` where dropped and
        ``1 / (1 - d)`` where kept; all ones if the pattern drops everything (``d == 1``).
    """
    pattern = check_conv_pattern(pattern)
    if len(shape) != 4 or not all(int(s) >= 1 for s in shape):
        raise ValueError(f"shape: expected (B, C, H, W) with positive sizes, got {tuple(shape)}")
    batch, channels, height, width = (int(s) for s in shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    maps = 1 if pattern.share_c else channels
    rows, cols, density = _keep_tables(
        height, width, pattern.size, pattern.stride, pattern.repeat,
        float(pattern.rotate), float(pattern.shear_x), float(pattern.shear_y), device,
    )
    if density >= 1.0:
        return torch.ones(batch, maps, height, width, device=device, dtype=dtype)
    if offsets is None:
        flat = torch.randint(height * width, (batch * maps,), generator=generator, device=device)
        off_row, off_col = flat // width, flat % width
    else:
        off_row, off_col = check_offsets(offsets, (batch, maps, 2), device).reshape(-1, 2).unbind(1)
        inside = (off_row >= 0) & (off_row < height) & (off_col >= 0) & (off_col < width)
        if not bool(inside.all()):
            raise ValueError(f"offsets: (row, col) values must lie in [0, {height}) x [0, {width})")
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
    if x.ndim != 4:
        raise ValueError(f"x: conv_pattern expects (B, C, H, W), got shape {tuple(x.shape)}")
    return x * conv_pattern_mask(x.shape, pattern, generator, x.device, x.dtype)


class ConvPatternDropout(nn.Module):
    """Module form of :func:`conv_pattern` for one site (AutoDropout, Pham & Le 2021).

    Args:
        pattern: the site's :class:`~autodropout.search_spaces.ConvLayerPattern`; ``None`` is the
            identity.

    Attributes:
        masks_residual: ``pattern.residual``: the WideResNet block also applies this module to its
            shortcut path when true.
    """

    def __init__(self, pattern: ConvLayerPattern | None) -> None:
        super().__init__()
        self.pattern = None if pattern is None else check_conv_pattern(pattern)
        self.masks_residual = bool(pattern is not None and pattern.residual)

    def forward(self, x: Tensor) -> Tensor:
        return conv_pattern(x, self.pattern, self.training)

    def extra_repr(self) -> str:
        if self.pattern is None:
            return "pattern=None"
        p = self.pattern
        return (
            f"size={p.size}, stride={p.stride}, repeat={p.repeat}, rotate={p.rotate}, "
            f"shear=({p.shear_x}, {p.shear_y}), share_c={p.share_c}, residual={p.residual}"
        )


def pattern_layers(pattern: Pattern | Sequence[object], kind: str, layer_type: type) -> list:
    """The per-site layer patterns of ``pattern`` (a ``kind`` Pattern or a list of ``layer_type``)."""
    if isinstance(pattern, Pattern):
        if pattern.kind != kind:
            raise ValueError(f"pattern: expected a {kind!r} Pattern, got a {pattern.kind!r} one")
        layers = list(pattern.layers)
    elif isinstance(pattern, Sequence) and not isinstance(pattern, (str, bytes)):
        layers = list(pattern)
    else:
        raise TypeError(
            f"pattern: expected a Pattern or a list of {layer_type.__name__}, got {type(pattern).__name__}"
        )
    for site, layer in enumerate(layers):
        if not isinstance(layer, layer_type):
            raise TypeError(
                f"pattern: site {site} is a {type(layer).__name__}, expected {layer_type.__name__}"
            )
    return layers


def conv_site_factories(
    pattern: Pattern | Sequence[ConvLayerPattern],
) -> list[Callable[[], ConvPatternDropout]]:
    """One zero-argument factory per site, in site order, each building that site's module.

    ``pattern`` is a ``"conv"`` :class:`~autodropout.search_spaces.Pattern` or a list of
    :class:`~autodropout.search_spaces.ConvLayerPattern` (models take one factory per site).
    """
    layers = pattern_layers(pattern, "conv", ConvLayerPattern)
    return [partial(ConvPatternDropout, check_conv_pattern(layer)) for layer in layers]


register(
    RegularizerInfo(
        name="conv_pattern",
        factory=ConvPatternDropout,
        reference="Pham & Le, AAAI 2021 (arXiv 2101.01761)",
        rate_param=None,
        identity_params={"pattern": None},
        example_params={
            "pattern": ConvLayerPattern(
                size=(2, 2), stride=2, repeat=2, rotate=30, shear_x=0.15, shear_y=0.0,
                share_c=False, residual=False,
            )
        },
        input_kinds=("conv",),
    )
)
