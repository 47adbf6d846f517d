"""The learned controller's settings in one typed, validated dataclass.

:class:`ControllerConfig` is what :class:`~autodropout.controller.searcher.ControllerSearcher` and
:class:`~autodropout.controller.reinforce.Reinforce` take, so an experiment's search section hands the
controller over in one piece, and a searcher's saved state records the settings it runs with (a
resumed search goes on with them). Standard library only (no torch, no Ray), low in the layers so
that :class:`~autodropout.runs.experiment.SearchConfig` takes its defaults from here.

The defaults were chosen by measurement on a synthetic target-matching reward
(``benchmarks/controller_synthetic.py``; the sweep and the reasons are in docs/search.md).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from autodropout.core.checks import is_int, is_real
from autodropout.core.errors import ConfigError

__all__ = ["START_PROBABILITY", "ControllerConfig", "ControllerSettingError", "check_start_probability"]

OPTIMIZERS = ("adam", "sgd")
#: With a start point (``search.start_from``), the probability that a first sample of either searcher
#: keeps each free decision of the start point (:mod:`autodropout.controller.warm_start`; measured in
#: docs/search.md, "Starting from a known point").
START_PROBABILITY = 0.8


class ControllerSettingError(ConfigError):
    """A bad controller setting (a ``ValueError``): ``setting`` names the field, ``problem`` says what
    is wrong, so a caller that spells the setting differently (``search.controller_lr``) can say so."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting, self.problem = setting, problem


@dataclass(frozen=True)
class ControllerConfig:
    """Settings of the LSTM controller and its REINFORCE update.

    Update rule (details in :mod:`autodropout.controller.reinforce`):

    Attributes:
        samples_per_update: completed valid trials per policy update.
        lr: learning rate of the policy optimiser.
        optimizer: ``"adam"`` or ``"sgd"`` (plain SGD, no momentum).
        entropy_weight: weight of the entropy bonus. With ``normalize_advantages`` it is on the scale of
            the normalised advantages, so it means the same thing whatever the reward's units.
        baseline_decay: decay of the exponential moving average of the reward (the baseline), in [0, 1).
        spread_decay: decay of the exponential moving average of the squared deviation from the
            baseline, whose square root (the reward's running spread) divides the advantages; in [0, 1).
        normalize_advantages: divide advantages by the running spread (unit-free updates). ``False``
            uses raw reward differences (the original ENAS rule, whose steps depend on the reward's units).
        clip_ratio: PPO's clipping range (Schulman et al., 2017) for samples drawn by an older policy
            than the one being updated (asynchronous results); ``None`` ignores the lag (ENAS).
        grad_clip: maximum total gradient norm; ``None`` disables clipping.
        hidden: LSTM hidden size of the policy.
        temperature: the policy's logits are divided by it before the tanh clip.
        tanh_constant: the policy's logits are clipped to (-c, c) by ``c * tanh(.)``; ``None`` disables it.
        share_heads: one softmax head and embedding table per decision type, shared by all sites (ENAS),
            instead of one per position (see :class:`~autodropout.controller.policy.LSTMPolicy`).
        start_half_life: with a start point, the suggestions after which the logit prior towards it
            has halved (:mod:`autodropout.controller.warm_start`).
    """

    samples_per_update: int = 2
    lr: float = 0.0025
    optimizer: Literal["adam", "sgd"] = "adam"
    entropy_weight: float = 0.03
    baseline_decay: float = 0.8
    spread_decay: float = 0.95
    normalize_advantages: bool = True
    clip_ratio: float | None = 0.2
    grad_clip: float | None = 5.0
    hidden: int = 64
    temperature: float = 1.0
    tanh_constant: float | None = 2.5
    share_heads: bool = False
    start_half_life: float = 8.0

    def __post_init__(self) -> None:
        if not is_int(self.samples_per_update, minimum=1):
            raise ControllerSettingError("samples_per_update", f"must be an int >= 1, got {self.samples_per_update!r}")
        _check_real("lr", self.lr, low=0.0, low_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise ControllerSettingError("optimizer", f"must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        _check_real("entropy_weight", self.entropy_weight, low=0.0)
        _check_real("baseline_decay", self.baseline_decay, low=0.0, high=1.0)
        _check_real("spread_decay", self.spread_decay, low=0.0, high=1.0)
        if not isinstance(self.normalize_advantages, bool):
            raise ControllerSettingError("normalize_advantages",
                                         f"must be true or false, got {self.normalize_advantages!r}")
        if self.clip_ratio is not None:
            _check_real("clip_ratio", self.clip_ratio, low=0.0, high=1.0, low_open=True)
        if self.grad_clip is not None:
            _check_real("grad_clip", self.grad_clip, low=0.0, low_open=True)
        if not is_int(self.hidden, minimum=1):
            raise ControllerSettingError("hidden", f"must be a positive int, got {self.hidden!r}")
        if not is_real(self.temperature, low=0.0, low_open=True):
            raise ControllerSettingError("temperature", f"must be a positive finite number, got {self.temperature!r}")
        if self.tanh_constant is not None and not is_real(self.tanh_constant, low=0.0, low_open=True):
            raise ControllerSettingError("tanh_constant",
                                         f"must be a positive finite number, got {self.tanh_constant!r}")
        if not isinstance(self.share_heads, bool):
            raise ControllerSettingError("share_heads", f"must be true or false, got {self.share_heads!r}")
        _check_real("start_half_life", self.start_half_life, low=0.0, low_open=True)

    def replace(self, **changes: Any) -> ControllerConfig:
        """A copy with some settings changed (validated again); an unknown name raises ``TypeError``."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of numbers, strings, bools and ``None`` (loads with ``torch.load(weights_only=True)``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ControllerConfig:
        """Inverse of :meth:`as_dict`; an unknown key raises ``KeyError`` naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise KeyError(f"ControllerConfig: unknown setting {unknown[0]!r} (valid: {', '.join(names)})")
        return cls(**values)


def check_start_probability(value: Any) -> float:
    """``value`` as a float if it is a probability strictly between 0 and 1, else ``ControllerSettingError``."""
    _check_real("start_probability", value, low=0.0, high=1.0, low_open=True)
    return float(value)


def _check_real(name: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> None:
    """Raise ``ControllerSettingError("NAME must be a finite number >= LOW [and < HIGH], got VALUE")``;
    upper bounds are open."""
    if not is_real(value, low, high, low_open=low_open, high_open=True):
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high is None else f" and < {high}")
        raise ControllerSettingError(name, f"must be a finite number {bound}, got {value!r}")
