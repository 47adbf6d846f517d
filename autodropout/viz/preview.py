"""The terminal preview of ``autodropout show``: one sampled mask per site, at the site's own size."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from autodropout.search_spaces import Pattern
from autodropout.viz.masks import (
    SiteSizes,
    describe_embedding,
    describe_layer,
    is_gaussian,
    pattern_masks,
    site_rate,
    site_sizes,
    size_text,
)

#: Width of the preview before site blocks wrap onto a new row.
PREVIEW_COLUMNS = 100
#: Largest part of one site shown (columns, rows); larger masks are cropped, and the preview says so.
PREVIEW_CROP = (96, 32)


def preview(pattern: Pattern, size: Sequence[int] | SiteSizes | None = None, title: str | None = None,
            seed: int = 0) -> str:
    """Channel 0 of one sampled mask per site: ``#`` dropped (Gaussian noise: multiplier below 1),
    ``.`` kept; site blocks side by side at their own sizes, wrapping at :data:`PREVIEW_COLUMNS`.

    Args:
        pattern: the pattern to draw.
        size: per-site sizes (:func:`~autodropout.viz.masks.site_sizes`), one ``(H, W)`` / ``(T, C)``
            for every site, or ``None`` for the default size.
        title: put in front of the first line.
        seed: of the sampled masks.

    The rate printed per site is measured on exactly the mask shown (before any crop), next to the
    rate the geometry gives at that size.
    """
    sizes = size if isinstance(size, SiteSizes) else site_sizes(pattern.kind, len(pattern), size=size)
    masks = [m[0, 0] for m in pattern_masks(pattern, sizes.sizes, channels=1, samples=1, seed=seed)]
    noun = "site" if pattern.kind == "conv" else "layer"
    lines = [_header(pattern, sizes, title, noun), *embedding_lines(pattern, sizes)]
    for i, (layer, mask, shape) in enumerate(zip(pattern.layers, masks, sizes.sizes)):
        extra = ""
        if sizes.extra:
            extra = f", {sizes.extra[i]} {'channels' if pattern.kind == 'conv' else 'heads'}"
        lines.append(f"  {noun} {i} ({size_text(shape, pattern.kind)}{extra}): {site_rate(layer, shape, mask).text()}; "
                     f"{describe_layer(layer)}")
    blocks = [_block(f"{noun} {i} {size_text(tuple(m.shape), pattern.kind)}", m) for i, m in enumerate(masks)]
    lines += _side_by_side(blocks)
    return "\n".join(lines)


def embedding_lines(pattern: Pattern, sizes: SiteSizes) -> list[str]:
    """One line per embedding site of a Transformer pattern (none for patterns without), its rate
    at the first layer's ``(T, C)``: an embedding output has the width and length of the layers'."""
    return [f"  embedding {i}: {describe_embedding(embedding, sizes.sizes[0])}"
            for i, embedding in enumerate(pattern.embeddings)]


def _header(pattern: Pattern, sizes: SiteSizes, title: str | None, noun: str) -> str:
    gaussian = any(is_gaussian(layer) for layer in pattern.layers)
    legend = "'#' dropped, '.' kept (kept values x 1/(1-d))"
    if gaussian:
        legend += "; Gaussian layers: '#' multiplier below 1, '.' above"
    height = max(s[0] for s in sizes.sizes)
    width = max(s[1] for s in sizes.sizes)
    crop = ""
    if width > PREVIEW_CROP[0] or height > PREVIEW_CROP[1]:
        crop = f"; showing at most {PREVIEW_CROP[0]} columns and {PREVIEW_CROP[1]} rows of each {noun}"
    count = len(pattern.embeddings)
    embeddings = f", {count} embedding site{'s' * (count != 1)}" if count else ""
    return (f"{title + ': ' if title else ''}{pattern.kind} pattern, {len(pattern)} {noun}s{embeddings}, "
            f"{sizes.note()}; "
            f"{legend}{crop}")


def _block(label: str, mask: torch.Tensor) -> list[str]:
    """A site's label and its grid, cropped to :data:`PREVIEW_CROP`."""
    shown = mask[:PREVIEW_CROP[1], :PREVIEW_CROP[0]]
    return [label] + ["".join("#" if v < 1 else "." for v in row) for row in shown.tolist()]


def _side_by_side(blocks: list[list[str]]) -> list[str]:
    """Blocks left to right, each as wide as its widest line plus 3 spaces, starting a new row of
    blocks where :data:`PREVIEW_COLUMNS` would be passed; shorter blocks end in blank lines."""
    rows: list[list[tuple[list[str], int]]] = [[]]
    for block in blocks:
        width = max(len(line) for line in block) + 3
        if rows[-1] and sum(w for _, w in rows[-1]) + width > PREVIEW_COLUMNS:
            rows.append([])
        rows[-1].append((block, width))
    lines: list[str] = []
    for row in rows:
        lines.append("")
        for r in range(max(len(block) for block, _ in row)):
            lines.append("".join((block[r] if r < len(block) else "").ljust(w) for block, w in row).rstrip())
    return lines
