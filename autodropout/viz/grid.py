"""One grey image of a pattern's masks for TensorBoard (pure torch: no matplotlib in the search driver).

The search logs it each time the best pattern changes, so it must stay cheap (a few milliseconds,
``docs/search.md``) yet be readable: each site's tiles are scaled up by whole pixels (nearest
neighbour) to about the size of the largest site's, and the whole grid to at least
:data:`MIN_WIDTH` pixels across.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from autodropout.search_spaces import Pattern
from autodropout.viz.masks import is_gaussian, pattern_masks

#: Narrowest image logged (TensorBoard shows images at their pixel size).
MIN_WIDTH = 400
#: Grey of the gaps between tiles (and of a Gaussian multiplier of exactly 1).
GAP = 0.5


def mask_grid(pattern: Pattern, size: Sequence[int] | Sequence[Sequence[int]] | None = None, channels: int = 4,
              samples: int = 2, seed: int = 0, gap: int = 1, min_width: int = MIN_WIDTH) -> torch.Tensor:
    """The masks of :func:`~autodropout.viz.masks.pattern_masks` as one grey image ``(1, rows, cols)``
    in [0, 1]: a row per site, its ``samples x channels`` tiles side by side, separated by ``gap``
    grey pixels; white = kept, black = dropped (Gaussian multipliers: grey 0.5 at 1, darker below,
    lighter above, full scale at the site's largest deviation).

    Each site's tiles are enlarged by a whole factor ``k = max(1, L // L_site)`` (``L`` the largest
    side of any site), so a 4x4 site of a 16/8/4 WRN fills a 16x16 cell; the image is then enlarged
    by a whole factor to at least ``min_width`` pixels across. ``size``: as in ``pattern_masks``.
    """
    return grid_of(pattern_masks(pattern, size, channels, samples, seed), pattern, gap, min_width)


def grid_of(masks: Sequence[torch.Tensor], pattern: Pattern, gap: int = 1, min_width: int = MIN_WIDTH) -> torch.Tensor:
    """:func:`mask_grid` of masks already drawn (``pattern_masks(pattern, ...)``), e.g. to also
    measure their rates."""
    largest = max(max(m.shape[-2:]) for m in masks)
    tiles = []
    for mask, layer in zip(masks, pattern.layers):
        grey = _grey(mask, is_gaussian(layer)).flatten(0, 1)  # (samples * channels, H, W)
        k = max(1, largest // max(grey.shape[-2:]))
        tiles.append(grey.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2))
    cell_h = max(t.shape[1] for t in tiles)
    cell_w = max(t.shape[2] for t in tiles)
    columns = max(t.shape[0] for t in tiles)
    image = torch.full((len(tiles) * (cell_h + gap), columns * (cell_w + gap)), GAP)
    for row, site in enumerate(tiles):
        top = row * (cell_h + gap)
        for column, tile in enumerate(site):
            left = column * (cell_w + gap)
            image[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    scale = -(-min_width // image.shape[1])  # ceil: the smallest whole factor reaching min_width
    if scale > 1:
        image = image.repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1)
    return image.unsqueeze(0)


def _grey(mask: torch.Tensor, gaussian: bool) -> torch.Tensor:
    if not gaussian:
        return (mask > 0).float()
    reach = max(float((mask - 1).abs().max()), 1e-6)
    return (GAP + (mask - 1) / (2 * reach)).clamp(0, 1)
