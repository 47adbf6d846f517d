"""Pictures of learned patterns (AutoDropout, Pham & Le 2021, fig. 1 style): sampled masks per site.

Masks are drawn by the regularizers' own mask functions
(:func:`~autodropout.regularizers.pattern_conv.conv_pattern_mask`,
:func:`~autodropout.regularizers.pattern_transformer.transformer_pattern_mask`), so a picture shows
exactly what training applies. Figures are plain :class:`matplotlib.figure.Figure` objects on the
Agg canvas (no pyplot state, never ``show()``), which is what the search's TensorBoard logger and
``autodropout show -o`` both use.

* Conv patterns: one row per site, columns = ``samples`` x ``channels`` masks of size ``(H, W)``;
  black is dropped, white kept.
* Transformer patterns: one row per layer, columns = ``samples`` masks of a representative
  ``(T, C)`` hidden state (tokens down, hidden units across); the same geometry acts at every
  sublayer the layer switches on (listed in the row label). Per-head tensors use the same geometry
  along ``d``. A layer that switches no sublayer on is drawn all kept and labelled "off".
  Gaussian-noise patterns are drawn as their multiplier around 1 (blue below, red above).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autodropout.atomic import atomic_write
from autodropout.checks import is_int
from autodropout.regularizers.pattern_conv import conv_pattern_mask
from autodropout.regularizers.pattern_transformer import transformer_pattern_mask
from autodropout.search_spaces import ConvLayerPattern, Pattern, load_patterns

#: Default drawing sizes: (H, W) feature maps for conv patterns, (T, C) hidden states for Transformers.
DEFAULT_SIZE = {"conv": (16, 16), "transformer": (16, 64)}
#: Width of the terminal preview before site blocks wrap onto a new row.
PREVIEW_COLUMNS = 100


def pattern_masks(
    pattern: Pattern,
    size: Sequence[int] | None = (16, 16),
    channels: int = 4,
    samples: int = 2,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Sampled masks of every site, in site order, as float32 multipliers (0 where dropped).

    Args:
        pattern: a conv or transformer :class:`~autodropout.search_spaces.Pattern`.
        size: ``(H, W)`` of a conv feature map, or ``(T, C)`` of a Transformer hidden state;
            ``None`` uses :data:`DEFAULT_SIZE` for the pattern's kind.
        channels: channels per conv mask (ignored for Transformer patterns, drawn on ``(B, T, C)``).
        samples: independent masks (batch entries) per site.
        seed: seed of the one generator all sites draw from, in site order.

    Returns:
        Per site a tensor ``(samples, channels, H, W)`` (conv) or ``(samples, 1, T, C)``
        (Transformer; all ones for a layer that switches no sublayer on).
    """
    if not isinstance(pattern, Pattern):
        raise TypeError(f"pattern: expected a Pattern, got {type(pattern).__name__}")
    height, width = _check_size(size, pattern.kind)
    for name, value in (("channels", channels), ("samples", samples)):
        if not is_int(value, 1):
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for layer in pattern.layers:
        if pattern.kind == "conv":
            mask = conv_pattern_mask((samples, channels, height, width), layer, generator, dtype=torch.float32)
            masks.append(mask.expand(samples, channels, height, width).clone())
        elif layer.sublayers:
            mask = transformer_pattern_mask((samples, height, width), layer, generator, dtype=torch.float32)
            masks.append(mask.expand(samples, height, width).unsqueeze(1).clone())
        else:
            masks.append(torch.ones(samples, 1, height, width))
    return masks


def mask_grid(pattern: Pattern, size: Sequence[int] | None = None, channels: int = 4, samples: int = 2,
              seed: int = 0, gap: int = 1) -> torch.Tensor:
    """The masks of :func:`pattern_masks` tiled into one grey image (1, rows, cols) in [0, 1]:
    a row per site, its channels x samples side by side, white = kept, black = dropped, separated
    by ``gap`` grey pixels. Pure torch, so the search can log it to TensorBoard every time the best
    pattern changes without the cost of a matplotlib figure."""
    masks = pattern_masks(pattern, size, channels, samples, seed)
    rows = []
    for mask in masks:
        tiles = (mask > 0).float().flatten(0, 1)  # (samples * channels, H, W)
        height = tiles.shape[1]
        pad = torch.full((tiles.shape[0], height, gap), 0.5)
        rows.append(torch.cat([torch.cat([t, p], dim=1) for t, p in zip(tiles, pad)], dim=1))
    width = max(r.shape[1] for r in rows)
    rows = [torch.cat([r, torch.full((r.shape[0], width - r.shape[1]), 0.5)], dim=1) for r in rows]
    spaced = [torch.cat([r, torch.full((gap, width), 0.5)], dim=0) for r in rows]
    return torch.cat(spaced, dim=0).unsqueeze(0)


def describe_layer(layer: Any) -> str:
    """One-line summary of a site's pattern, e.g. ``4x4 tiles, each drops 1/2 x 3/4, rotate 30``
    (conv tiles per axis before the ``L // 2`` cap, and the fraction of its period each tile drops
    along height and width)."""
    return ", ".join(_layer_parts(layer))


def _layer_parts(layer: Any) -> list[str]:
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


def pattern_figure(
    pattern: Pattern,
    title: str | None = None,
    size: Sequence[int] | None = None,
    channels: int = 4,
    samples: int = 2,
    seed: int = 0,
) -> Figure:
    """A grid of sampled masks: rows = sites, columns = samples x channels (see module docstring)."""
    masks = pattern_masks(pattern, size, channels, samples, seed)
    conv = pattern.kind == "conv"
    rows, columns = len(masks), masks[0].shape[0] * masks[0].shape[1]
    height, width = masks[0].shape[-2:]
    cell_w = 1.1 if conv else 2.4
    cell_h = 1.1 if conv else max(0.6, 2.4 * height / width)
    figure = Figure(figsize=(1.9 + columns * cell_w, 0.5 + rows * (cell_h + 0.35)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for site, (mask, layer) in enumerate(zip(masks, pattern.layers)):
        gaussian = not conv and layer.noise == "gaussian" and bool(layer.sublayers)
        if gaussian:
            reach = max(float((mask - 1).abs().max()), 1e-6)
            style = dict(cmap="coolwarm", vmin=1 - reach, vmax=1 + reach)
        else:
            style = dict(cmap="gray", vmin=0.0, vmax=max(float(mask.max()), 1e-6))
        for column in range(columns):
            sample, channel = divmod(column, mask.shape[1])
            ax = axes[site, column]
            ax.imshow(mask[sample, channel].numpy(), interpolation="nearest", aspect="auto" if not conv else "equal",
                      **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if site == 0:
                ax.set_title(f"sample {sample + 1}" + (f", ch {channel + 1}" if conv else ""), fontsize=8)
        label = "\n".join([f"{'site' if conv else 'layer'} {site}", *_layer_parts(layer)])
        axes[site, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def show(
    patterns_file: str | os.PathLike,
    rank: int = 1,
    size: Sequence[int] | None = None,
    output: str | os.PathLike | None = None,
) -> str | None:
    """``autodropout show``: write the figure as a PNG to ``output``, or return a terminal preview.

    Args:
        patterns_file: a pattern JSON file.
        rank: which pattern of the file (1 = best).
        size: ``(H, W)`` (conv) or ``(T, C)`` (Transformer); default :data:`DEFAULT_SIZE`.
        output: PNG to write (atomically); ``None`` returns the text preview instead.

    Returns:
        The preview text, or a one-line note of the file written.
    """
    patterns = load_patterns(patterns_file)
    pattern = patterns.get(rank)
    name = Path(patterns_file).name
    if output is None:
        return preview(pattern, size=size, title=f"rank {rank} of {name}")
    figure = pattern_figure(pattern, title=f"{name}, rank {rank}: {pattern.kind} pattern, {len(pattern)} sites",
                            size=size)
    save_figure(figure, output)
    return f"wrote {output} ({pattern.kind} pattern, {len(pattern)} sites, rank {rank})"


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG atomically."""
    return atomic_write(path, lambda fh: figure.savefig(fh, format="png", dpi=110))


def preview(pattern: Pattern, size: Sequence[int] | None = None, title: str | None = None, seed: int = 0) -> str:
    """Text preview: channel 0 of one sampled mask per site, ``#`` dropped (or scaled below 1 by
    Gaussian noise) and ``.`` kept; site blocks side by side, wrapping at :data:`PREVIEW_COLUMNS`."""
    masks = pattern_masks(pattern, size, channels=1, samples=1, seed=seed)
    height, width = masks[0].shape[-2:]
    noun = "site" if pattern.kind == "conv" else "layer"
    shape = f"{height}x{width} maps" if pattern.kind == "conv" else f"(T, C) = ({height}, {width}) hidden states"
    gaussian = any(getattr(layer, "noise", None) == "gaussian" for layer in pattern.layers)
    legend = "'#' dropped (Gaussian noise: multiplier below 1), '.' kept" if gaussian else "'#' dropped, '.' kept"
    lines = [f"{title + ': ' if title else ''}{pattern.kind} pattern, {len(masks)} {noun}s, {shape}; {legend}"]
    lines += [f"  {noun} {i}: {describe_layer(layer)}" for i, layer in enumerate(pattern.layers)]
    grids = [["".join("#" if v < 1 else "." for v in row) for row in mask[0, 0].tolist()] for mask in masks]
    block = max(width, len(f"{noun} {len(masks) - 1}")) + 3
    per_row = max(1, PREVIEW_COLUMNS // block)
    for start in range(0, len(grids), per_row):
        chunk = range(start, min(start + per_row, len(grids)))
        lines.append("")
        lines.append("".join(f"{noun} {i}".ljust(block) for i in chunk).rstrip())
        for r in range(height):
            lines.append("".join(grids[i][r].ljust(block) for i in chunk).rstrip())
    return "\n".join(lines)


def _check_size(size: Sequence[int] | None, kind: str) -> tuple[int, int]:
    if size is None:
        return DEFAULT_SIZE[kind]
    values = tuple(size)
    if len(values) != 2 or not all(is_int(v, 1) for v in values):
        raise ValueError(f"size: expected two positive ints (H, W) or (T, C), got {size!r}")
    return values[0], values[1]
