"""The AutoDropout controller (Pham & Le, AAAI 2021, sec. 3.3): an LSTM policy over a search space's
tokens, trained with REINFORCE from the rewards that workers report.

``ControllerConfig`` holds the controller's settings (standard library only, so the experiment config
can use its defaults without importing torch); ``LSTMPolicy`` and ``Reinforce`` are plain torch;
``ControllerSearcher`` and ``RandomSearcher`` are the Ray Tune adapters. Every searcher a search can
name (``search.controller``) is registered in :mod:`autodropout.controller.searchers`, one file each
(``EvolutionSearcher``: regularized evolution). Everything but the settings is imported lazily, so
importing the policy never imports Ray and importing the settings never imports torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autodropout.controller.config import ControllerConfig

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from autodropout.controller.policy import LSTMPolicy, Policy
    from autodropout.controller.reinforce import Reinforce, UpdateStats
    from autodropout.controller.searcher import ControllerSearcher, RandomSearcher
    from autodropout.controller.searchers.evolution import EvolutionConfig, EvolutionSearcher

_LAZY = {
    "LSTMPolicy": "autodropout.controller.policy",
    "Policy": "autodropout.controller.policy",
    "Reinforce": "autodropout.controller.reinforce",
    "UpdateStats": "autodropout.controller.reinforce",
    "ControllerSearcher": "autodropout.controller.searcher",
    "RandomSearcher": "autodropout.controller.searcher",
    "EvolutionConfig": "autodropout.controller.searchers.evolution",
    "EvolutionSearcher": "autodropout.controller.searchers.evolution",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autodropout.controller' has no attribute {name!r}")


__all__ = [
    "ControllerConfig", "ControllerSearcher", "EvolutionConfig", "EvolutionSearcher", "LSTMPolicy", "Policy",
    "RandomSearcher", "Reinforce", "UpdateStats",
]
