"""autodropout: learned dropout patterns (Pham & Le, AAAI 2021, arXiv 2101.01761) and the
dropout-family regularizers they are judged against.

Submodules are imported lazily so that ``import autodropout`` stays cheap (no Ray, no torch until
something needs it).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "search_spaces", "regularizers", "models", "data", "tasks", "controller", "workers", "runs",
    "config", "experiment", "errors", "transfer", "viz", "apply", "recalibration", "patterns", "study",
}
_ATTRIBUTES = {
    "save_patterns": "autodropout.search_spaces.pattern_json",
    "load_patterns": "autodropout.patterns",  # a file, or a shipped pattern by name
    "PatternFormatError": "autodropout.search_spaces.pattern_json",
    "PatternSet": "autodropout.search_spaces.pattern_json",
    "ConvSpace": "autodropout.search_spaces",
    "TransformerSpace": "autodropout.search_spaces",
    "apply_patterns": "autodropout.apply",
    "recalibrate_batchnorm": "autodropout.recalibration",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"autodropout.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'autodropout' has no attribute {name!r}")


__all__ = sorted(_SUBMODULES | set(_ATTRIBUTES))
