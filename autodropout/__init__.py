"""autodropout: learned dropout patterns (Pham & Le, AAAI 2021, arXiv 2101.01761) and the
dropout-family regularizers they are judged against.

Submodules are imported lazily so that ``import autodropout`` stays cheap (no Ray, no torch until
something needs it).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: ``autodropout.NAME`` -> the module it names (the folders by layer are docs/architecture.md's).
_SUBMODULES = {
    "search_spaces": "autodropout.search_spaces", "regularizers": "autodropout.regularizers",
    "models": "autodropout.models", "data": "autodropout.data", "tasks": "autodropout.tasks",
    "controller": "autodropout.controller", "tune": "autodropout.tune", "workers": "autodropout.tune",
    "runs": "autodropout.runs", "config": "autodropout.core.config", "experiment": "autodropout.runs.experiment",
    "errors": "autodropout.core.errors", "transfer": "autodropout.commands.transfer", "viz": "autodropout.viz",
    "apply": "autodropout.apply", "recalibration": "autodropout.apply.recalibration",
    "patterns": "autodropout.patterns", "study": "autodropout.study",
}
_ATTRIBUTES = {
    "save_patterns": "autodropout.search_spaces.pattern_json",
    "load_patterns": "autodropout.patterns",  # a file, or a shipped pattern by name
    "PatternFormatError": "autodropout.search_spaces.pattern_json",
    "PatternSet": "autodropout.search_spaces.pattern_json",
    "ConvSpace": "autodropout.search_spaces",
    "TransformerSpace": "autodropout.search_spaces",
    "apply_patterns": "autodropout.apply.hooks",
    "recalibrate_batchnorm": "autodropout.apply.recalibration",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'autodropout' has no attribute {name!r}")


__all__ = sorted(set(_SUBMODULES) | set(_ATTRIBUTES))
