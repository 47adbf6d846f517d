"""REINFORCE for the controller: unit-free advantages, entropy bonus, clipped ratios for stale samples.

Williams (1992) with the ENAS recipe (Pham et al., ICML 2018) that AutoDropout (Pham & Le, AAAI 2021,
sec. 3.3) trains its controller with, made independent of the reward's units. For a batch of
(tokens, reward[, behaviour log-prob]) samples the loss is

    loss = -mean_i[min(rho_i * A_i, clip(rho_i, 1 - eps, 1 + eps) * A_i)] - entropy_weight * mean_i[H_i]

- ``A_i = (reward_i - baseline_i) / spread_i``: the reward's deviation from a moving-average baseline,
  divided by a running estimate of the reward's spread (below). The step then depends on how large a
  reward difference is *relative to the rewards seen*, not on the reward's units: the same search on
  ``r`` and on ``a + b * r`` (``b > 0``) takes the same steps. Without it (``normalize_advantages=False``,
  the original ENAS rule) a reward gap of 1e-3 between accuracies moves nothing against the entropy
  bonus while the same gap in other units would dominate it.
- ``H_i``: the sum over positions of the exact entropy of each step's conditional distribution
  (differentiable, so the bonus pulls the policy back towards uniform directly). Its weight is on the
  scale of the normalised advantages, so it is unit-free too. Under rewards that carry no signal the
  normalised advantages are a zero-mean random walk that the bonus pulls back (an equilibrium around
  a high entropy); a consistent signal drifts past it.
- ``rho_i = p(tokens_i) / p_behaviour(tokens_i)``: results arrive asynchronously, so a sample may have
  been drawn by a policy a few updates older than the one being updated. With ``clip_ratio`` (PPO,
  Schulman et al., 2017) the importance ratio corrects for that lag and the clip bounds how far one
  stale sample can push (``rho = 1`` for a fresh sample, where the loss is plain REINFORCE). Samples
  given without a behaviour log-probability, or ``clip_ratio=None``, use ``rho = 1`` (ENAS's
  asynchronous REINFORCE, which ignores the lag).

The gradient norm is clipped to ``grad_clip`` before the optimiser (Adam or SGD) steps.

Baseline and spread, in arrival order, one reward at a time (so the advantages depend only on the order
of the rewards, never on how they were grouped into updates):

- the first reward initialises the baseline; its advantage is 0.
- for each later reward ``r``: ``d = r - baseline`` (the baseline before ``r``: a sample's own reward
  never moves its baseline); ``spread = sqrt(weighted mean of d**2)`` over the deviations so far,
  *this one included*, with weights ``spread_decay ** age`` (bias-corrected like Adam's moments, so the
  first deviation alone gives ``spread = |d|``); ``A = d / spread``; then
  ``baseline = baseline_decay * baseline + (1 - baseline_decay) * r``.
- including the current deviation bounds every advantage (``|A| <= 1 / sqrt(weight of the newest
  deviation)``, at most ``1 / sqrt(1 - spread_decay)``), so an early tiny spread or one outlier cannot
  give a huge step.
- a spread of zero (constant rewards), or below ``1e-9 * |baseline|`` (float rounding of a constant
  reward), gives ``A = 0``: no reward difference, no policy-gradient step (the entropy term still acts).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from autodropout.controller.config import ControllerConfig
from autodropout.controller.policy import Policy
from autodropout.core.checks import first_missing_and_unknown, is_int, is_real

__all__ = ["Reinforce", "UpdateStats", "check_state_keys"]

_STATE_KEYS = ("policy", "optimizer", "baseline", "spread_sum", "spread_weight", "step", "generator")

#: A spread at or below this fraction of |baseline| is float rounding of a constant reward, not a difference.
SPREAD_FLOOR = 1e-9


@dataclass(frozen=True)
class UpdateStats:
    """What one :meth:`Reinforce.update` did, for logging.

    Attributes:
        loss: the minimised loss (policy-gradient term plus entropy bonus).
        mean_reward, max_reward: over the batch.
        baseline: the baseline before this batch (the first sample's; later samples of the batch use
            the baseline with the earlier rewards folded in).
        entropy: mean over the batch of the summed per-step entropies (nats), under the pre-update policy.
        grad_norm: total gradient 2-norm before clipping.
        advantage_mean: mean over the batch of ``reward - baseline`` (reward units, before normalising).
        spread: the running reward spread after this batch (reward units; 0 while undefined).
        step: number of updates done so far, this one included.
        num_samples: batch size.
    """

    loss: float
    mean_reward: float
    max_reward: float
    baseline: float
    entropy: float
    grad_norm: float
    advantage_mean: float
    spread: float
    step: int
    num_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class Reinforce:
    """Trains a :class:`~autodropout.controller.policy.Policy` from (tokens, reward) samples.

    Args:
        policy: e.g. :class:`~autodropout.controller.policy.LSTMPolicy`.
        config: the update settings (``lr``, ``optimizer``, ``entropy_weight``, ``baseline_decay``,
            ``spread_decay``, ``normalize_advantages``, ``clip_ratio``, ``grad_clip``; the policy and
            batching settings are the searcher's); default :class:`ControllerConfig()`.
        seed: seeds the generator that :meth:`sample` draws with (saved in :meth:`state_dict`).
        **settings: overrides of ``config``'s fields, e.g. ``Reinforce(policy, lr=3e-3)``.
    """

    def __init__(self, policy: Policy, config: ControllerConfig | None = None, *, seed: int = 0,
                 **settings: Any) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must implement sample/log_prob/parameters/state_dict, got {type(policy).__name__}")
        if config is not None and not isinstance(config, ControllerConfig):
            raise TypeError(f"config must be a ControllerConfig, got {type(config).__name__}")
        config = (config or ControllerConfig()).replace(**settings)
        if not is_int(seed):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.policy = policy
        self.config = config
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
        else:
            self.optimizer = torch.optim.SGD(policy.parameters(), lr=config.lr)
        self.device = next(iter(policy.parameters())).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.baseline: float | None = None
        # Bias-corrected EMA of squared deviations: spread**2 = spread_sum / spread_weight.
        self.spread_sum = 0.0
        self.spread_weight = 0.0
        self.step = 0

    @property
    def spread(self) -> float:
        """The running spread of the rewards (reward units; 0 before two rewards were seen)."""
        return math.sqrt(self.spread_sum / self.spread_weight) if self.spread_weight > 0 else 0.0

    def sample(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``policy.sample(n)`` with this trainer's generator: tokens (n, L), log_probs (n,), entropies (n,)."""
        return self.policy.sample(n, generator=self.generator)

    def update(self, samples: Sequence[tuple[Any, ...]]) -> UpdateStats:
        """One policy-gradient step on a batch of ``(tokens, reward)`` or ``(tokens, reward,
        behaviour_log_prob)`` samples (the log-probability the tokens had under the policy that drew
        them); see the module docstring.

        Raises:
            ValueError: on an empty batch or a non-finite or non-numeric reward (the searcher filters
                failed trials before calling this); nothing is changed then.
        """
        token_lists, rewards, behaviour = _parse(samples)
        # Teacher-forced log-probs first: they validate the tokens before any statistic changes.
        log_probs, entropies = self.policy.log_prob(token_lists)
        baseline_before = rewards[0] if self.baseline is None else self.baseline
        raw, advantages = self._advantages(rewards)
        advantage = torch.tensor(advantages, dtype=log_probs.dtype, device=log_probs.device)
        if self.config.clip_ratio is not None and all(b is not None for b in behaviour):
            # PPO's clipped surrogate; its gradient at ratio 1 is REINFORCE's advantage * grad log p.
            old = torch.tensor(behaviour, dtype=log_probs.dtype, device=log_probs.device)
            ratio = torch.exp(log_probs - old)
            eps = self.config.clip_ratio
            surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - eps, 1 + eps) * advantage)
        else:
            surrogate = advantage * log_probs
        loss = -surrogate.mean() - self.config.entropy_weight * entropies.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parameters = [p for p in self.policy.parameters() if p.grad is not None]
        # An infinite bound measures the norm without scaling (torch>=2.2 has no get_total_norm).
        max_norm = math.inf if self.config.grad_clip is None else self.config.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        self.optimizer.step()

        self.step += 1
        return UpdateStats(
            loss=float(loss.detach()),
            mean_reward=sum(rewards) / len(rewards),
            max_reward=max(rewards),
            baseline=baseline_before,
            entropy=float(entropies.detach().mean()),
            grad_norm=float(grad_norm),
            advantage_mean=sum(raw) / len(raw),
            spread=self.spread,
            step=self.step,
            num_samples=len(rewards),
        )

    def _advantages(self, rewards: list[float]) -> tuple[list[float], list[float]]:
        """Fold the rewards into the baseline and spread one by one; return the raw and the used advantages."""
        raw, used = [], []
        decay, spread_decay = self.config.baseline_decay, self.config.spread_decay
        for reward in rewards:
            if self.baseline is None:
                self.baseline = reward
                raw.append(0.0)
                used.append(0.0)
                continue
            deviation = reward - self.baseline
            self.spread_sum = spread_decay * self.spread_sum + (1.0 - spread_decay) * deviation * deviation
            self.spread_weight = spread_decay * self.spread_weight + (1.0 - spread_decay)
            raw.append(deviation)
            if not self.config.normalize_advantages:
                used.append(deviation)
            else:
                spread = self.spread
                defined = spread > 0.0 and spread > SPREAD_FLOOR * abs(self.baseline)
                used.append(deviation / spread if defined else 0.0)
            self.baseline = decay * self.baseline + (1.0 - decay) * reward
        return raw, used

    def state_dict(self) -> dict[str, Any]:
        """Everything the next update and the next samples depend on: policy and optimiser state,
        baseline, spread, step counter, sampling-generator state. Plain tensors/numbers/dicts/lists
        only, so it loads with ``torch.load(weights_only=True)``. The settings are the owner's to
        save (the searcher saves its :class:`ControllerConfig`)."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "spread_sum": self.spread_sum,
            "spread_weight": self.spread_weight,
            "step": self.step,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; a missing or unknown key raises ``KeyError`` naming it."""
        check_state_keys("Reinforce", state, _STATE_KEYS)
        baseline, step = state["baseline"], state["step"]
        if baseline is not None and not is_real(baseline):
            raise ValueError(f"Reinforce state: 'baseline' must be a number or None, got {baseline!r}")
        if not is_int(step, minimum=0):
            raise ValueError(f"Reinforce state: 'step' must be a non-negative int, got {step!r}")
        for key in ("spread_sum", "spread_weight"):
            value = state[key]
            if not is_real(value, low=0.0):
                raise ValueError(f"Reinforce state: {key!r} must be a number >= 0, got {value!r}")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = None if baseline is None else float(baseline)
        self.spread_sum, self.spread_weight = float(state["spread_sum"]), float(state["spread_weight"])
        self.step = step


def check_state_keys(owner: str, state: Mapping[str, Any], expected: Sequence[str]) -> None:
    """Raise ``KeyError`` naming the first missing, then the first unknown key of a saved state."""
    missing, unknown = first_missing_and_unknown(state, expected)
    if missing is not None or unknown is not None:
        what = f"missing key {missing!r}" if missing is not None else f"unknown key {unknown!r}"
        raise KeyError(f"{owner} state: {what} (expected {list(expected)})")


def _parse(samples: Sequence[tuple[Any, ...]]) -> tuple[list[list[int]], list[float], list[float | None]]:
    """Validate a batch before anything changes; returns token lists, rewards and behaviour log-probs."""
    if not isinstance(samples, Sequence) or isinstance(samples, (str, bytes)) or not samples:
        raise ValueError("samples must be a non-empty list of (tokens, reward) pairs")
    token_lists, rewards, behaviour = [], [], []
    for i, item in enumerate(samples):
        # A log-probability is <= 0 exactly in floats too (log_softmax <= 0 element by element).
        if (not isinstance(item, (tuple, list)) or len(item) not in (2, 3)
                or (len(item) == 3 and item[2] is not None and not is_real(item[2], high=0.0))):
            raise ValueError(f"samples[{i}] must be a (tokens, reward) pair or a (tokens, reward, "
                             f"behaviour log-prob <= 0) triple, got {item!r}")
        tokens, reward = item[0], item[1]
        old = item[2] if len(item) == 3 else None
        if isinstance(reward, bool) or not isinstance(reward, numbers.Real) or not math.isfinite(reward):
            raise ValueError(f"samples[{i}]: reward must be a finite number, got {reward!r}")
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, (Sequence, Tensor)):
            raise ValueError(f"samples[{i}]: tokens must be a list of ints, got {tokens!r}")
        token_lists.append(tokens.tolist() if isinstance(tokens, Tensor) else list(tokens))
        rewards.append(float(reward))
        behaviour.append(None if old is None else float(old))
    return token_lists, rewards, behaviour
