"""Pictures of learned patterns: sampled masks per site, each site at its own size.

* :mod:`~autodropout.viz.masks` (pure torch): the masks, the per-site sizes, the measured and
  expected drop rates.
* :mod:`~autodropout.viz.grid` (pure torch): one grey image for TensorBoard, logged by the search's
  driver, which therefore never imports matplotlib.
* :mod:`~autodropout.viz.figures` (matplotlib): the figure of ``autodropout show -o``; imported
  lazily, on first use of :func:`pattern_figure` or :func:`save_figure`.
* :mod:`~autodropout.viz.preview` (text) and :mod:`~autodropout.viz.show` (the command).
"""
from __future__ import annotations

import importlib
from typing import Any

from autodropout.viz.grid import mask_grid
from autodropout.viz.masks import (
    DEFAULT_SIZE,
    SiteRate,
    SiteSizes,
    ViewError,
    describe_layer,
    pattern_masks,
    site_rate,
    site_sizes,
)
from autodropout.viz.preview import preview
from autodropout.viz.show import show

_FIGURES = {"pattern_figure", "save_figure"}


def __getattr__(name: str) -> Any:
    if name in _FIGURES:
        return getattr(importlib.import_module("autodropout.viz.figures"), name)
    raise AttributeError(f"module 'autodropout.viz' has no attribute {name!r}")


__all__ = ["DEFAULT_SIZE", "SiteRate", "SiteSizes", "ViewError", "describe_layer", "mask_grid", "pattern_figure",
           "pattern_masks", "preview", "save_figure", "show", "site_rate", "site_sizes"]
