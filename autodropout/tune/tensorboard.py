"""Controller logging: TensorBoard scalars, choice histograms and the best pattern's masks."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from autodropout.controller.reinforce import UpdateStats
from autodropout.viz.grid import grid_of
from autodropout.viz.masks import describe_embedding, describe_layer, pattern_masks, site_rate, site_sizes, size_text


class ControllerLogger:
    """A picklable ``on_update`` listener for the searchers (the writer is opened lazily and never
    pickled, so a restored searcher keeps logging to the same folder).

    Args:
        log_dir: the TensorBoard folder (a run folder's ``tensorboard/controller``).
        images: log the masks of the best pattern so far each time it changes.
        site_shapes: what each site of the searched model sees (``(C, H, W)`` or ``(T, C, heads)``,
            :func:`autodropout.tasks.task_sites`), so the image draws each site at its size;
            ``None`` draws the default size.
    """

    def __init__(self, log_dir: str | Path, images: bool = True,
                 site_shapes: Sequence[Sequence[int]] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.images = images
        self.site_shapes = None if site_shapes is None else tuple(tuple(s) for s in site_shapes)
        self._best: float | None = None
        self._writer = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_writer": None}

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def __call__(self, searcher: Any, stats: UpdateStats | None, history: list[dict[str, Any]]) -> None:
        step = len(history)
        entry = history[-1]
        w = self.writer
        if entry["value"] is not None:
            w.add_scalar("trials/reward", entry["value"], step)
        valid = [h["value"] for h in history if h["value"] is not None]
        if valid:
            w.add_scalar("trials/best_reward", max(valid), step)
        w.add_scalar("trials/failed", searcher.num_failed, step)
        if stats is not None:
            for name in ("mean_reward", "max_reward", "baseline", "entropy", "loss", "grad_norm"):
                value = getattr(stats, name, None)
                if value is not None and math.isfinite(value):
                    w.add_scalar(f"controller/{name}", value, stats.step)
            self._log_choices(searcher, stats.step)
        if self.images and entry["value"] is not None and (self._best is None or entry["value"] > self._best):
            self._best = entry["value"]
            self._log_best_pattern(searcher, entry, step)
        w.flush()

    def _log_choices(self, searcher: Any, step: int) -> None:
        policy = getattr(searcher, "policy", None)
        if policy is None:
            return
        with torch.no_grad():
            tokens, _, _ = policy.sample(64, generator=torch.Generator().manual_seed(step))
        # Layer decisions keep their plain tags; an embedding site's are their own ("embedding_size").
        names = [d.name if d.group == "layer" else f"{d.group}_{d.name}" for d in searcher.space.decisions]
        for name in dict.fromkeys(names):
            columns = [i for i, n in enumerate(names) if n == name]
            self.writer.add_histogram(f"choices/{name}", tokens[:, columns].flatten().float(), step)

    def _log_best_pattern(self, searcher: Any, best: dict[str, Any], step: int) -> None:
        """The best pattern's masks as one grey image (:func:`~autodropout.viz.grid.mask_grid`, at
        least 400 pixels wide) and, as text, each site's size, the drop rate measured on the masks drawn
        and the geometry."""
        pattern = searcher.space.decode(best["tokens"])
        sizes = site_sizes(pattern.kind, len(pattern), self.site_shapes).sizes
        masks = pattern_masks(pattern, sizes)
        self.writer.add_image("best_pattern/masks", grid_of(masks, pattern), step)
        lines = [f"embedding {i}: {describe_embedding(embedding, sizes[0])}"
                 for i, embedding in enumerate(pattern.embeddings)]
        lines += [f"site {i} ({size_text(size, pattern.kind)}): {site_rate(layer, size, mask).text()}; "
                  f"{describe_layer(layer)}" for i, (layer, size, mask) in enumerate(zip(pattern.layers, sizes, masks))]
        self.writer.add_text("best_pattern/trial", f"trial {best['trial_id']}, value {best['value']:.4f}\n\n"
                             + "\n\n".join(lines), step)
