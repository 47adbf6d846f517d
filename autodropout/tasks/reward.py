"""The one place where a validation metric becomes the controller's reward (larger is better).

* accuracy (image classification): the accuracy itself, in [0, 1];
* perplexity (language modelling): ``c / perplexity`` with a constant ``c`` (Pham & Le 2021 use
  c = 80 on PTB, so rewards sit near 1 for good models), configurable per experiment;
* BLEU (translation): ``BLEU / 100``, in [0, 1].
"""
from __future__ import annotations

import math

METRICS = {"accuracy": "max", "perplexity": "min", "bleu": "max"}
#: The values each metric can take (a plotted interval is clipped to them: a t-interval of BLEU
#: scores near 0 would otherwise reach below 0).
METRIC_RANGES = {"accuracy": (0.0, 1.0), "perplexity": (1.0, math.inf), "bleu": (0.0, 100.0)}
#: ``c`` of the language-model reward ``c / perplexity`` (Pham & Le 2021 on PTB).
PERPLEXITY_CONSTANT = 80.0


def reward(metric: str, value: float, *, constant: float | None = None) -> float:
    """Reward of a validation ``value`` of ``metric``; non-finite values give NaN (never a reward).

    ``constant`` is the ``c`` of ``c / perplexity`` (default :data:`PERPLEXITY_CONSTANT`)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    if not math.isfinite(value):
        return math.nan
    if metric == "accuracy":
        return float(value)
    if metric == "perplexity":
        c = PERPLEXITY_CONSTANT if constant is None else constant
        return c / value if value > 0 else math.nan
    return value / 100.0
