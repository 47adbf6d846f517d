"""``autodropout show``: a pattern file's masks as a PNG or a terminal preview, each site at its size."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from autodropout.patterns import load_patterns
from autodropout.viz.masks import ViewError, site_sizes
from autodropout.viz.preview import embedding_lines, preview


def show(
    patterns_file: str | os.PathLike,
    rank: int = 1,
    size: Sequence[int] | None = None,
    output: str | os.PathLike | None = None,
) -> str:
    """Draw pattern ``rank`` of ``patterns_file``: write the figure as a PNG to ``output``, or
    return the terminal preview.

    Args:
        patterns_file: a pattern JSON file, or a shipped pattern's name (:mod:`autodropout.patterns`).
        rank: which pattern of the file (1 = best).
        size: ``(H, W)`` (conv) or ``(T, C)`` (Transformer) for every site; default: each site's
            size in the searched model (the file's ``source.site_shapes``), else
            :data:`~autodropout.viz.masks.DEFAULT_SIZE`.
        output: PNG to write (atomically; its folder must exist); ``None`` returns the preview.

    Returns:
        The preview text, or a one-line note of the file written. Bad input (missing or invalid
        file, unknown rank, bad size or output) raises a ``UserInputError`` before anything is written.
    """
    if output is not None:
        _check_output(Path(output))
    patterns = load_patterns(patterns_file)
    pattern = patterns.get(rank)
    sizes = site_sizes(pattern.kind, len(pattern), patterns.site_shapes, size)
    name = Path(patterns_file).name
    what = f"{pattern.kind} pattern, {len(pattern)} {'sites' if pattern.kind == 'conv' else 'layers'}"
    if pattern.embeddings:
        what += f", {len(pattern.embeddings)} embedding site{'s' * (len(pattern.embeddings) != 1)}"
    if output is None:
        return preview(pattern, size=sizes, title=f"rank {rank} of {name}")
    from autodropout.viz.figures import pattern_figure, save_figure  # matplotlib only when drawing

    save_figure(pattern_figure(pattern, title=f"{name}, rank {rank}: {what}", size=sizes), output)
    return "\n".join([f"wrote {output} ({what}, rank {rank}; {sizes.note()})", *embedding_lines(pattern, sizes)])


def _check_output(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise ViewError(f"{path}: the picture is written as PNG; give a file name ending in .png")
    if not path.parent.is_dir():
        raise ViewError(f"{path}: folder {path.parent} does not exist")
