"""Matplotlib figures of a pattern's masks (AutoDropout, Pham & Le 2021, fig. 1 style).

Plain :class:`matplotlib.figure.Figure` objects on the Agg canvas (no pyplot state, never ``show()``).

* Rows are sites, each drawn at its own size (:class:`~autodropout.viz.masks.SiteSizes`) and
  labelled with that size, the drop rate measured on the drawn masks next to the expected one, and
  the pattern's geometry.
* Conv patterns: columns = ``samples x channels`` masks ``(H, W)``. Transformer patterns: columns =
  ``samples`` masks of a ``(T, C)`` hidden state (tokens down, hidden units across); the same geometry
  acts at every sublayer the layer switches on (listed in the label; per-head tensors use it along
  ``C / heads``). A layer that switches no sublayer on is drawn all kept and labelled "off".
* Black is dropped (x0), white kept (x ``1 / (1 - d)``), as the legend says; Gaussian-noise layers
  are drawn as their multiplier around 1 (blue below, red above) with a colour bar.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from autodropout.core.atomic import atomic_write
from autodropout.search_spaces import Pattern
from autodropout.viz.masks import SiteSizes, is_gaussian, layer_parts, pattern_masks, site_rate, site_sizes, size_text

#: Inches per mask: conv cells are square; Transformer cells are this wide and as tall as T / C makes them.
CELL = {"conv": 1.1, "transformer": 2.4}
LABEL_WIDTH = 2.6


def pattern_figure(
    pattern: Pattern,
    title: str | None = None,
    size: Sequence[int] | SiteSizes | None = None,
    channels: int = 4,
    samples: int = 2,
    seed: int = 0,
) -> Figure:
    """A grid of sampled masks: rows = sites at their own sizes, columns = samples x channels (conv)
    or samples (Transformer); see the module docstring.

    Args:
        pattern: the pattern to draw.
        title: the figure's title (the size note of ``size`` is appended on a second line).
        size: per-site sizes (:func:`~autodropout.viz.masks.site_sizes`), one ``(H, W)`` / ``(T, C)``
            for every site, or ``None`` for the default size.
        channels, samples, seed: as in :func:`~autodropout.viz.masks.pattern_masks`.
    """
    sizes = size if isinstance(size, SiteSizes) else site_sizes(pattern.kind, len(pattern), size=size)
    masks = pattern_masks(pattern, sizes.sizes, channels, samples, seed)
    conv = pattern.kind == "conv"
    columns = masks[0].shape[0] * masks[0].shape[1]
    cell = CELL[pattern.kind]
    heights = [cell if conv else min(cell, max(0.7, cell * h / w)) for h, w in sizes.sizes]
    figure = Figure(figsize=(LABEL_WIDTH + columns * cell + 0.8, 1.0 + sum(h + 0.3 for h in heights)),
                    layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(masks), columns, squeeze=False, gridspec_kw={"height_ratios": heights})
    for site, (mask, layer) in enumerate(zip(masks, pattern.layers)):
        image = _draw_row(axes[site], mask, layer, conv, first=site == 0)
        if is_gaussian(layer):
            bar = figure.colorbar(image, ax=list(axes[site]), fraction=0.04, pad=0.01)
            bar.set_label("multiplier", fontsize=7)
            bar.ax.tick_params(labelsize=7)
        axes[site, 0].set_ylabel(_label(pattern, sizes, site, mask), fontsize=7, rotation=0, ha="right", va="center")
    figure.suptitle("\n".join(filter(None, [title, sizes.note()])), fontsize=9)
    if not all(is_gaussian(layer) for layer in pattern.layers):
        figure.legend(handles=[Patch(facecolor="black", edgecolor="grey", label="dropped (x 0)"),
                               Patch(facecolor="white", edgecolor="grey",
                                     label="kept (x 1 / (1 - d), d = the expected rate of the site)")],
                      loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    return figure


def _draw_row(axes: Any, mask: torch.Tensor, layer: Any, conv: bool, first: bool) -> Any:
    """Draw one site's masks into a row of axes; returns the last image (for a colour bar)."""
    if is_gaussian(layer):
        reach = max(float((mask - 1).abs().max()), 1e-6)
        style = dict(cmap="coolwarm", vmin=1 - reach, vmax=1 + reach)
    else:
        style = dict(cmap="gray", vmin=0.0, vmax=max(float(mask.max()), 1e-6))
    image = None
    for column, ax in enumerate(axes):
        sample, channel = divmod(column, mask.shape[1])
        image = ax.imshow(mask[sample, channel].numpy(), interpolation="nearest", aspect="equal" if conv else "auto",
                          **style)
        ax.set_xticks([])
        ax.set_yticks([])
        if first:
            ax.set_title(f"sample {sample + 1}" + (f", ch {channel + 1}" if conv else ""), fontsize=8)
    return image


def _label(pattern: Pattern, sizes: SiteSizes, site: int, mask: torch.Tensor) -> str:
    """``site 1: 8x8, 64 channels`` / the measured and expected rate / the geometry, two parts a line."""
    layer, shape = pattern.layers[site], sizes.sizes[site]
    noun, unit = ("site", "channels") if pattern.kind == "conv" else ("layer", "heads")
    head = f"{noun} {site}: {size_text(shape, pattern.kind)}"
    if sizes.extra:
        head += f", {sizes.extra[site]} {unit}"
    parts = layer_parts(layer)
    geometry = [", ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
    return "\n".join([head, site_rate(layer, shape, mask).text(), *geometry])


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG atomically."""
    return atomic_write(path, lambda fh: figure.savefig(fh, format="png", dpi=110))
