"""Starting a search from a known-good point (issue 20): ``autodropout search --start-from SPEC``.

A study judges a learned pattern against regularizers whose rates were tuned; a search that starts
at the pattern nearest to the tuned baseline and refines it can at worst match it. Both searchers
take the start point as tokens of their space, and both suggest exactly those tokens first (so the
known-good point itself is always evaluated). After that, with ``q = start_probability``:

* the LSTM controller samples through a decaying logit prior (:class:`PriorPolicy`): at every
  position, ``beta_i = log(q (k_i - 1) / (1 - q))`` is added to the start token's logit (after the
  tanh clip), ``k_i`` the choices the space allows there along the start point, so an untrained
  (near-uniform) policy keeps each free decision of the start with probability ``q``. The prior is
  scaled by ``0.5 ** (n / start_half_life)`` for the ``n``-th suggestion, so it fades whatever the
  rewards say while REINFORCE trains the LSTM underneath. The prior is part of the distribution
  sampled from, so log-probabilities, entropies and importance ratios include it.
* random search (:func:`mutate`) draws every suggestion around the start point: each free decision
  keeps the start's choice with probability ``q``, else takes one of the other allowed choices
  uniformly, so its draws stay as close to the start as the controller's first samples.

Why a decaying prior rather than a maximum-likelihood fit of the LSTM to the start tokens: measured
with ``benchmarks/controller_synthetic.py --warm-start`` (docs/search.md, "Starting from a known
point"): both gain about as much from a good start, but a misleading start cost the fitted LSTM far
more, for longer. The prior is a pure function of the start point, ``q`` and the suggestion count,
so a resumed search recomputes it and nothing is redone. No Ray here.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from autodropout.controller.policy import LSTMPolicy
from autodropout.search_spaces import SearchSpace

__all__ = ["PriorPolicy", "allowed_counts", "mutate", "start_prior"]


def allowed_counts(space: SearchSpace, tokens: Sequence[int]) -> list[int]:
    """Per position, how many choices ``space.choice_mask`` allows after ``tokens``' prefix (1: the
    decision is forced by the earlier ones, a sample cannot get it wrong)."""
    counts = []
    for position, decision in enumerate(space.decisions):
        mask = space.choice_mask(list(tokens[:position]))
        counts.append(len(decision.choices) if mask is None else sum(mask))
    return counts


def start_prior(space: SearchSpace, tokens: Sequence[int], probability: float) -> list[Tensor]:
    """Per position a (k,) logit offset: ``log(q (k_i - 1) / (1 - q))`` on the start token, 0 elsewhere
    (and 0 where the decision is forced), ``q = probability``."""
    prior = []
    for decision, token, allowed in zip(space.decisions, tokens, allowed_counts(space, tokens)):
        offset = torch.zeros(len(decision.choices))
        if allowed > 1:
            offset[token] = math.log(probability * (allowed - 1) / (1 - probability))
        prior.append(offset)
    return prior


class PriorPolicy(LSTMPolicy):
    """:class:`LSTMPolicy` whose logits get ``prior_scale * prior[i]`` added at position ``i``
    (after the temperature and the tanh clip); no prior (``None``, the default) is the plain LSTM.

    The prior is not a parameter (not trained, not in ``state_dict``): its owner sets it
    (:meth:`set_prior`) and its scale (``prior_scale``) from what it saves.
    """

    def __init__(self, space: SearchSpace, **options: Any) -> None:
        super().__init__(space, **options)
        self.prior: list[Tensor] | None = None
        self.prior_scale = 0.0

    def set_prior(self, prior: list[Tensor] | None) -> None:
        self.prior = prior

    def _logits(self, output: Tensor, position: int) -> Tensor:
        logits = super()._logits(output, position)
        if self.prior is None or self.prior_scale == 0.0:
            return logits
        return logits + self.prior_scale * self.prior[position].to(logits)


def mutate(space: SearchSpace, tokens: Sequence[int], probability: float, rng: random.Random) -> list[int]:
    """A draw around ``tokens``: in order, each decision keeps its token with ``probability`` (if the
    space still allows it after the new prefix), else takes another allowed choice uniformly; a
    decision whose token the new prefix forbids takes an allowed one uniformly (the repair of forced
    positions: ``space.choice_mask``)."""
    drawn: list[int] = []
    for position, token in enumerate(tokens):
        mask = space.choice_mask(drawn)
        allowed = [i for i in range(len(space.decisions[position].choices)) if mask is None or mask[i]]
        others = [i for i in allowed if i != token]
        keep = token in allowed and (not others or rng.random() < probability)
        drawn.append(token if keep else rng.choice(others))
    return drawn
