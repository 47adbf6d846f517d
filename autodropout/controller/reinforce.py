"""REINFORCE for the controller: moving-average baseline, entropy bonus, gradient clipping, Adam.

Williams (1992) with the ENAS recipe (Pham et al., ICML 2018) that AutoDropout (Pham & Le, AAAI 2021,
sec. 3.3) trains its controller with. For a batch of (tokens, reward) pairs the loss is

    loss = -mean_i[(reward_i - baseline) * log p(tokens_i)] - entropy_weight * mean_i[H_i]

where ``H_i`` is the sum over positions of the exact entropy of each step's conditional distribution
(differentiable, so the bonus pushes the policy away from early collapse directly). The gradient norm
is clipped to ``grad_clip`` before the Adam step.

Asynchronous use: :meth:`Reinforce.update` takes tokens and rewards only and recomputes the
log-probabilities with the *current* policy, so results can be fed in as trials finish, in any grouping,
even when the tokens were sampled a few updates ago by an older policy. That is the standard
asynchronous REINFORCE of ENAS's distributed setting: the small off-policy lag is ignored (no
importance weights), which keeps the estimator simple at the cost of a little bias.

Baseline: an exponential moving average of the rewards in arrival order. The advantages of a batch use
the baseline from *before* that batch (a sample's own reward never lowers its advantage); the very
first reward seen initialises it. The batch's rewards are then folded in one by one,
``baseline = decay * baseline + (1 - decay) * reward``, so the baseline depends only on the order of
the rewards, not on how they were grouped into updates.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from autodropout.controller.policy import Policy

__all__ = ["Reinforce", "UpdateStats"]

_STATE_KEYS = ("policy", "optimizer", "baseline", "step", "generator")


@dataclass(frozen=True)
class UpdateStats:
    """What one :meth:`Reinforce.update` did, for logging.

    Attributes:
        loss: the minimised loss (policy-gradient term plus entropy bonus).
        mean_reward, max_reward: over the batch.
        baseline: the baseline the advantages were computed against (before folding in this batch).
        entropy: mean over the batch of the summed per-step entropies (nats), under the pre-update policy.
        grad_norm: total gradient 2-norm before clipping.
        advantage_mean: mean of ``reward - baseline``.
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
    step: int
    num_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class Reinforce:
    """Trains a :class:`~autodropout.controller.policy.Policy` from (tokens, reward) pairs.

    Args:
        policy: e.g. :class:`~autodropout.controller.policy.LSTMPolicy`.
        lr: Adam learning rate (ENAS: 3.5e-4).
        entropy_weight: weight of the entropy bonus (0 disables it).
        baseline_decay: EMA decay of the reward baseline, in [0, 1).
        grad_clip: maximum total gradient norm; ``None`` disables clipping.
        seed: seeds the generator that :meth:`sample` draws with (saved in :meth:`state_dict`).
    """

    def __init__(
        self,
        policy: Policy,
        lr: float = 3.5e-4,
        entropy_weight: float = 1e-4,
        baseline_decay: float = 0.95,
        grad_clip: float | None = 5.0,
        seed: int = 0,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must implement sample/log_prob/parameters/state_dict, got {type(policy).__name__}")
        _check_number("lr", lr, low=0.0, low_open=True)
        _check_number("entropy_weight", entropy_weight, low=0.0)
        _check_number("baseline_decay", baseline_decay, low=0.0, high=1.0)
        if grad_clip is not None:
            _check_number("grad_clip", grad_clip, low=0.0, low_open=True)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.policy = policy
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.device = next(iter(policy.parameters())).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.baseline: float | None = None
        self.step = 0

    def sample(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``policy.sample(n)`` with this trainer's generator: tokens (n, L), log_probs (n,), entropies (n,)."""
        return self.policy.sample(n, generator=self.generator)

    def update(self, samples: Sequence[tuple[Sequence[int], float]]) -> UpdateStats:
        """One policy-gradient step on a batch of (tokens, reward) pairs; see the module docstring.

        Raises:
            ValueError: on an empty batch or a non-finite or non-numeric reward (the searcher filters
                failed trials before calling this).
        """
        if not isinstance(samples, Sequence) or isinstance(samples, (str, bytes)) or not samples:
            raise ValueError("samples must be a non-empty list of (tokens, reward) pairs")
        token_lists, rewards = [], []
        for i, item in enumerate(samples):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f"samples[{i}] must be a (tokens, reward) pair, got {item!r}")
            tokens, reward = item
            if isinstance(reward, bool) or not isinstance(reward, numbers.Real) or not math.isfinite(reward):
                raise ValueError(f"samples[{i}]: reward must be a finite number, got {reward!r}")
            if isinstance(tokens, (str, bytes)) or not isinstance(tokens, (Sequence, Tensor)):
                raise ValueError(f"samples[{i}]: tokens must be a list of ints, got {tokens!r}")
            token_lists.append(tokens.tolist() if isinstance(tokens, Tensor) else list(tokens))
            rewards.append(float(reward))

        baseline = rewards[0] if self.baseline is None else self.baseline
        advantages = [r - baseline for r in rewards]

        log_probs, entropies = self.policy.log_prob(token_lists)
        advantage = torch.tensor(advantages, dtype=log_probs.dtype, device=log_probs.device)
        loss = -(advantage * log_probs).mean() - self.entropy_weight * entropies.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parameters = [p for p in self.policy.parameters() if p.grad is not None]
        # An infinite bound measures the norm without scaling (torch>=2.2 has no get_total_norm).
        max_norm = math.inf if self.grad_clip is None else self.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        self.optimizer.step()

        moving = baseline
        for reward in rewards:
            moving = self.baseline_decay * moving + (1.0 - self.baseline_decay) * reward
        self.baseline = moving
        self.step += 1
        return UpdateStats(
            loss=float(loss.detach()),
            mean_reward=sum(rewards) / len(rewards),
            max_reward=max(rewards),
            baseline=baseline,
            entropy=float(entropies.detach().mean()),
            grad_norm=float(grad_norm),
            advantage_mean=sum(advantages) / len(advantages),
            step=self.step,
            num_samples=len(rewards),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything the next update and the next samples depend on: policy and Adam state, baseline,
        step counter, sampling-generator state. Plain tensors/numbers/dicts/lists only, so it loads with
        ``torch.load(weights_only=True)``."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "step": self.step,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; a missing or unknown key raises ``KeyError`` naming it."""
        missing = [k for k in _STATE_KEYS if k not in state]
        unknown = sorted(set(state) - set(_STATE_KEYS))
        if missing:
            raise KeyError(f"Reinforce state: missing key {missing[0]!r} (expected {list(_STATE_KEYS)})")
        if unknown:
            raise KeyError(f"Reinforce state: unknown key {unknown[0]!r} (expected {list(_STATE_KEYS)})")
        baseline, step = state["baseline"], state["step"]
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, (int, float))):
            raise ValueError(f"Reinforce state: 'baseline' must be a number or None, got {baseline!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"Reinforce state: 'step' must be a non-negative int, got {step!r}")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = None if baseline is None else float(baseline)
        self.step = step


def _check_number(name: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high is None else f" and < {high}")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
