"""Sampled masks of a pattern, each site at its own size, and what they drop (pure torch).

Masks come from the regularizers' own mask functions
(:func:`~autodropout.regularizers.pattern_conv.conv_pattern_mask`,
:func:`~autodropout.regularizers.pattern_transformer.transformer_pattern_mask`), so a picture shows
exactly what training applies. A conv pattern's geometry is laid relative to the map, so its drop
density depends on the map size (``docs/search_spaces.md``): each site is drawn at the size it has
in the searched model (a pattern file's ``source.site_shapes``), at a size the user gives, or at
:data:`DEFAULT_SIZE`, and :class:`SiteSizes` says which.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch

from autodropout.core.checks import is_int
from autodropout.core.errors import UserInputError
from autodropout.regularizers.pattern_conv import conv_pattern_mask
from autodropout.regularizers.pattern_transformer import hidden_run, transformer_pattern_mask
from autodropout.search_spaces import ConvLayerPattern, EmbeddingPattern, Pattern

#: What one keep bit of each non-tile conv unit covers, in words.
UNIT_TEXT = {"element": "single activations", "channel": "whole channels", "sample": "whole samples"}
#: Drawing size when nothing better is known: ``(H, W)`` of a conv map, ``(T, C)`` of a hidden state.
DEFAULT_SIZE = {"conv": (16, 16), "transformer": (16, 64)}
#: Largest side drawn (a 1024x1024 map of 2 x 4 masks is 32 MB of float32).
MAX_SIDE = 1024

Size = tuple[int, int]


class ViewError(UserInputError, ValueError):
    """Bad input to a picture: a size, a sample count, an output file."""


@dataclass(frozen=True)
class SiteSizes:
    """Where each site is drawn and why.

    Attributes:
        sizes: per site ``(H, W)`` (conv) or ``(T, C)`` (Transformer: tokens x hidden units).
        origin: ``"model"`` (the file's ``source.site_shapes``), ``"given"`` (``size=`` / ``--size``)
            or ``"default"`` (:data:`DEFAULT_SIZE`: the file records no shapes).
        extra: per site the channels (conv) or attention heads (Transformer) of the model, when known.
    """

    sizes: tuple[Size, ...]
    origin: str
    extra: tuple[int, ...] | None = None

    def note(self) -> str:
        """How the sizes were chosen, for titles and previews."""
        return {"model": "each site at its size in the searched model",
                "given": "sizes as given",
                "default": "default size (the file records no site shapes; choose with --size)"}[self.origin]


def site_sizes(kind: str, num_sites: int, site_shapes: Sequence[Sequence[int]] | None = None,
               size: Sequence[int] | None = None) -> SiteSizes:
    """Per-site drawing sizes: ``size`` for every site if given, else the model's ``site_shapes``
    (``(C, H, W)`` or ``(T, C, heads)`` per site, as in a pattern file), else :data:`DEFAULT_SIZE`."""
    if size is not None:
        return SiteSizes((check_size(size, kind),) * num_sites, "given")
    if site_shapes is not None:
        if len(site_shapes) != num_sites:
            raise ViewError(f"site_shapes: {len(site_shapes)} shapes for {num_sites} sites")
        if kind == "conv":
            return SiteSizes(tuple(check_size(s[1:], kind) for s in site_shapes), "model",
                             tuple(s[0] for s in site_shapes))
        return SiteSizes(tuple(check_size(s[:2], kind) for s in site_shapes), "model", tuple(s[2] for s in site_shapes))
    return SiteSizes((DEFAULT_SIZE[kind],) * num_sites, "default")


def check_size(size: Sequence[int], kind: str) -> Size:
    """``size`` as an ``(H, W)`` / ``(T, C)`` pair of ints in ``[1, MAX_SIDE]`` that a site of
    ``kind`` can carry (a conv map of at least 2 pixels, a hidden width of at least 2 units)."""
    values = tuple(size)
    if len(values) != 2 or not all(is_int(v, 1) and v <= MAX_SIDE for v in values):
        raise ViewError(f"size: expected two positive ints (H, W) or (T, C), at most {MAX_SIDE}, got {size!r}")
    if kind == "conv" and values[0] * values[1] < 2:
        raise ViewError(f"size: a {values[0]}x{values[1]} map cannot carry a pattern (it needs 2 pixels or more)")
    if kind == "transformer" and values[1] < 2:
        raise ViewError(f"size: a hidden width of {values[1]} unit cannot carry a pattern (it needs 2 or more)")
    return values[0], values[1]


def pattern_masks(
    pattern: Pattern,
    size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    channels: int = 4,
    samples: int = 2,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Sampled masks of every site, in site order, as float32 multipliers (0 where dropped).

    Args:
        pattern: a conv or transformer :class:`~autodropout.search_spaces.Pattern`.
        size: ``(H, W)`` (conv) or ``(T, C)`` (Transformer) for every site, or one such pair per
            site (e.g. ``site_sizes(...).sizes``); ``None``: :data:`DEFAULT_SIZE` for every site.
        channels: channels per conv mask (ignored for Transformer patterns, drawn on ``(B, T, C)``).
        samples: independent masks (batch entries) per site.
        seed: seed of the one generator all sites draw from, in site order.

    Returns:
        Per site a tensor ``(samples, channels, H, W)`` (conv) or ``(samples, 1, T, C)``
        (Transformer; all ones for a layer that switches no sublayer on).
    """
    if not isinstance(pattern, Pattern):
        raise TypeError(f"pattern: expected a Pattern, got {type(pattern).__name__}")
    sizes = _per_site(size, pattern)
    for name, value in (("channels", channels), ("samples", samples)):
        if not is_int(value, 1):
            raise ViewError(f"{name}: expected a positive int, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for layer, (height, width) in zip(pattern.layers, sizes):
        if pattern.kind == "conv":
            mask = conv_pattern_mask((samples, channels, height, width), layer, generator, dtype=torch.float32)
            masks.append(mask.expand(samples, channels, height, width).clone())
        elif layer.sublayers:
            mask = transformer_pattern_mask((samples, height, width), layer, generator, dtype=torch.float32)
            masks.append(mask.expand(samples, height, width).unsqueeze(1).clone())
        else:
            masks.append(torch.ones(samples, 1, height, width))
    return masks


def _per_site(size: Any, pattern: Pattern) -> list[Size]:
    if size is None:
        return [DEFAULT_SIZE[pattern.kind]] * len(pattern)
    values = tuple(size)
    if values and all(isinstance(v, (list, tuple)) for v in values):
        if len(values) != len(pattern):
            raise ViewError(f"size: {len(values)} per-site sizes for a pattern of {len(pattern)} sites")
        return [check_size(v, pattern.kind) for v in values]
    return [check_size(values, pattern.kind)] * len(pattern)


def is_gaussian(layer: Any) -> bool:
    """Whether a site's masks are Gaussian multipliers (not zeros): a Transformer layer that is on."""
    return getattr(layer, "noise", None) == "gaussian" and bool(layer.sublayers)


@dataclass(frozen=True)
class SiteRate:
    """What a site's masks do: the expected value from the geometry and the value measured on masks.

    For zeros (conv, Bernoulli), ``expected`` is the drop probability of every unit (conv: the
    density ``d`` of the tiles or the unit's rate, ``ConvLayerPattern.density``; Transformer:
    ``n / (n + stride)``) and ``measured`` the fraction of zeros. For Gaussian noise both are the multiplier's standard
    deviation (``sqrt(n / stride)``).
    """

    expected: float
    measured: float
    gaussian: bool = False

    def text(self) -> str:
        if self.gaussian:
            return f"noise std {self.measured:.2f} (expected {self.expected:.2f})"
        return f"drops {self.measured:.1%} (expected d = {self.expected:.1%})"


def site_rate(layer: Any, size: Size, mask: torch.Tensor) -> SiteRate:
    """The :class:`SiteRate` of ``layer`` drawn at ``size`` (``(H, W)`` / ``(T, C)``), measured on
    ``mask`` (any shape: every element counts)."""
    if is_gaussian(layer):
        run = hidden_run(layer.size, size[1])
        return SiteRate(math.sqrt(run / layer.stride), float(mask.std()) if mask.numel() > 1 else 0.0, True)
    return SiteRate(expected_drop(layer, size), float(mask.eq(0).float().mean()))


def expected_drop(layer: Any, size: Size) -> float:
    """Probability that a unit is zeroed by ``layer`` at ``size`` (0 for a Transformer layer that is off)."""
    if isinstance(layer, ConvLayerPattern):
        return float(layer.density(*size))
    if not layer.sublayers:
        return 0.0
    run = hidden_run(layer.size, size[1])
    return run / (run + layer.stride)


def describe_layer(layer: Any) -> str:
    """One-line summary of a site's pattern, e.g. ``4x4 tiles, each drops 1/2 x 3/4, rotate 30``
    (conv tiles per axis before the ``L // 2`` cap, and the fraction of its period each tile drops
    along height and width) or ``drops whole channels at p = 0.3`` (the other conv units)."""
    return ", ".join(layer_parts(layer))


def layer_parts(layer: Any) -> list[str]:
    """The parts of :func:`describe_layer`, for multi-line labels."""
    if isinstance(layer, ConvLayerPattern) and layer.unit != "tile":
        return [f"drops {UNIT_TEXT[layer.unit]} at p = {layer.rate:g}"] + (["+residual"] if layer.residual else [])
    if isinstance(layer, ConvLayerPattern):
        height, width = (Fraction(side, side + layer.stride) for side in layer.size)
        parts = [f"{layer.repeat}x{layer.repeat} tiles", f"each drops {height} x {width}"]
        if layer.rotate:
            parts.append(f"rotate {layer.rotate}")
        if layer.shear_x or layer.shear_y:
            parts.append(f"shear ({layer.shear_x:g}, {layer.shear_y:g})")
        return parts + (["per channel"] if not layer.share_c else []) + (["+residual"] if layer.residual else [])
    pitch = layer.size + layer.stride
    noise = (f"drop {layer.size} every {pitch} units" if layer.noise == "bernoulli"
             else f"N(1, {layer.size / layer.stride:g}) noise per {pitch}-unit window")
    where = ",".join(layer.sublayers) or "off"
    return [f"{where}: {noise}", f"span {layer.span}"] + (["shared heads"] if layer.share_heads else [])


def describe_embedding(embedding: EmbeddingPattern, size: Size) -> str:
    """One-line summary of an embedding site's pattern, with its exact drop rate on a ``(T, C)``
    embedding output for zeros, e.g. ``tokens: drop 2 every 6 tokens (d = 33.3%)``."""
    if embedding.unit == "off":
        return "off (nothing dropped)"
    tokens = embedding.unit == "token"
    unit, pitch = "token" if tokens else "unit", embedding.size + embedding.stride
    noise = (f"N(1, {embedding.size / embedding.stride:g}) noise per {pitch}-{unit} window"
             if embedding.noise == "gaussian"
             else f"drop {embedding.size} every {pitch} {unit}s (d = {float(embedding.rate(*size)):.1%})")
    span = "" if tokens else f", span {embedding.span}"
    return f"{'tokens' if tokens else 'features'}: {noise}{span}"


def size_text(size: Size, kind: str) -> str:
    """``16x16`` for a conv map, ``T 32 x C 64`` for a Transformer hidden state."""
    return f"{size[0]}x{size[1]}" if kind == "conv" else f"T {size[0]} x C {size[1]}"
