"""The AutoDropout controller (Pham & Le, AAAI 2021, sec. 3.3): an LSTM policy over a search space's
tokens, trained with REINFORCE from the rewards that workers report.

``LSTMPolicy`` and ``Reinforce`` are plain torch; ``ControllerSearcher`` and ``RandomSearcher`` are the
Ray Tune adapters and are imported lazily, so importing the policy never imports Ray.
"""
from __future__ import annotations

import importlib
from typing import Any

from autodropout.controller.policy import LSTMPolicy, Policy
from autodropout.controller.reinforce import Reinforce, UpdateStats

_LAZY = {
    "ControllerSearcher": "autodropout.controller.searcher",
    "RandomSearcher": "autodropout.controller.searcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autodropout.controller' has no attribute {name!r}")


__all__ = ["ControllerSearcher", "LSTMPolicy", "Policy", "RandomSearcher", "Reinforce", "UpdateStats"]
