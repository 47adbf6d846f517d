"""The one place where a validation metric becomes the controller's reward (larger is better).

* accuracy (image classification): the accuracy itself, in [0, 1];
* perplexity (language modelling): ``c / perplexity`` with a constant ``c`` (Pham & Le 2021 use
  c = 80 on PTB, so rewards sit near 1 for good models), configurable per experiment;
* BLEU (translation): ``BLEU / 100``, in [0, 1].
"""
from __future__ import annotations

import math

METRICS = {"accuracy": "max", "perplexity": "min", "bleu": "max"}


def reward(metric: str, value: float, *, constant: float = 80.0) -> float:
    """Reward of a validation ``value`` of ``metric``; non-finite values give NaN (never a reward)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    if not math.isfinite(value):
        return math.nan
    if metric == "accuracy":
        return float(value)
    if metric == "perplexity":
        return constant / value if value > 0 else math.nan
    return value / 100.0
