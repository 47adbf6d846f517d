"""Regularized evolution over the pattern tokens (Real, Aggarwal, Huang & Le, "Regularized Evolution for
Image Classifier Architecture Search", AAAI 2019), with the same Ray Tune interface as the LSTM
controller and random search: ``search.controller: evolution``, settings
``search.searchers.evolution: {population: P, sample_size: S}`` (:class:`EvolutionConfig`).

The population is the ``population`` most recent finished trials (aging: the oldest leaves when a new
one arrives, whatever its reward, which is what makes the evolution "regularized"). A suggestion
samples ``sample_size`` members uniformly without replacement, takes the best of them (tournament
selection) and changes exactly one of its free decisions (:func:`mutate_one`). While the population
fills, suggestions are random draws, or, with a start point, mutations of it
(:func:`~autodropout.controller.warm_start.mutate`, as random search makes them), so warm arms stay
comparable. The search is asynchronous, as in the paper: a suggestion uses the population as it is
when it is made.

Only full-schedule rewards enter the population (status "ok", the rule of
:mod:`autodropout.controller.searcher`): a failed, invalid or stopped trial leaves it as it was. The
population, the settings and the RNG state are the saved state, so a resumed search continues exactly
as an uninterrupted one would.

This one file is the whole searcher: settings, class and registration (docs/search.md, "Adding a searcher").
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from autodropout.controller.searcher import BaseSearcher
from autodropout.controller.searchers.registry import SearcherInfo, register
from autodropout.controller.warm_start import mutate
from autodropout.core.checks import is_int
from autodropout.core.errors import ConfigError
from autodropout.search_spaces import SearchSpace


@dataclass(frozen=True)
class EvolutionConfig:
    """Regularized evolution's settings (``search.searchers.evolution``).

    Attributes:
        population: P, the finished trials the population keeps (the most recent ones: aging).
        sample_size: S, the members a tournament draws (without replacement); the best is the parent.
            ``None``: half the population (:attr:`tournament`).

    Defaults measured with ``benchmarks/controller_synthetic.py`` (docs/search.md, "Regularized
    evolution"): at this project's budgets (24 to 300 trials) a population of 16 turns over often
    enough to climb, and a tournament of half of it (S/P = 1/2) climbs faster than the paper's
    S/P = 1/4 (100 / 25, for tens of thousands of trials) at every budget measured, noisy rewards included.
    """

    population: int = 16
    sample_size: int | None = None

    def __post_init__(self) -> None:
        if not is_int(self.population, minimum=2):
            raise ConfigError(f"population: expected an int of at least 2, got {self.population!r}")
        if self.sample_size is not None and not is_int(self.sample_size, minimum=1, maximum=self.population):
            raise ConfigError(f"sample_size: expected an int from 1 to population ({self.population}), "
                              f"got {self.sample_size!r}")

    @property
    def tournament(self) -> int:
        """S as used: ``sample_size``, or half the population (``population // 2``)."""
        return self.population // 2 if self.sample_size is None else self.sample_size


def allowed(space: SearchSpace, prefix: Sequence[int], position: int) -> list[int]:
    """The choices of decision ``position`` that the space allows after ``prefix``."""
    mask = space.choice_mask(list(prefix))
    return [i for i in range(len(space.decisions[position].choices)) if mask is None or mask[i]]


def mutate_one(space: SearchSpace, tokens: Sequence[int], rng: random.Random) -> list[int]:
    """``tokens`` with one free decision (one the space leaves more than one choice) set to another
    allowed choice, uniformly; later decisions that the change forbids take an allowed choice
    uniformly (the repair of :func:`~autodropout.controller.warm_start.mutate`), the others are kept."""
    free = [p for p in range(len(tokens)) if len(allowed(space, tokens[:p], p)) > 1]
    if not free:
        return list(tokens)
    position = rng.choice(free)
    child = list(tokens[:position])
    child.append(rng.choice([c for c in allowed(space, child, position) if c != tokens[position]]))
    for later in range(position + 1, len(tokens)):
        choices = allowed(space, child, later)
        child.append(tokens[later] if tokens[later] in choices else rng.choice(choices))
    return child


class EvolutionSearcher(BaseSearcher):
    """Regularized evolution (see the module docstring).

    Args:
        space: the pattern search space.
        config: population and tournament size (:class:`EvolutionConfig`, default ``EvolutionConfig()``).
        **options: :class:`~autodropout.controller.searcher.BaseSearcher`'s keywords.
    """

    def __init__(self, space: SearchSpace, *, config: EvolutionConfig | None = None, **options: Any) -> None:
        super().__init__(space, **options)
        if config is not None and not isinstance(config, EvolutionConfig):
            raise TypeError(f"config must be an EvolutionConfig, got {type(config).__name__}")
        self.config = config or EvolutionConfig()
        self.rng = random.Random(self.seed)
        self.members: deque[tuple[list[int], float]] = deque(maxlen=self.config.population)

    def _next_tokens(self, trial_id: str) -> list[int]:
        if len(self.members) < self.config.population:
            if self.start_tokens is None:
                return self.space.sample(self.rng)
            return mutate(self.space, self.start_tokens, self.start_probability, self.rng)
        contestants = self.rng.sample(list(self.members), self.config.tournament)
        parent = max(contestants, key=lambda member: member[1])[0]
        return mutate_one(self.space, parent, self.rng)

    def _complete(self, trial_id: str, tokens: list[int], reward: float | None) -> None:
        if reward is not None:
            self.members.append((list(tokens), float(reward)))  # the deque drops the oldest: aging
        return None

    def get_state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {**super().get_state(), "config": asdict(self.config), "rng": [version, list(internal), gauss],
                "members": [[list(t), r] for t, r in self.members]}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.config = EvolutionConfig(**state["config"])  # the saved settings win: a resume goes on as it began
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.members = deque(((list(t), float(r)) for t, r in state["members"]), maxlen=self.config.population)


register(SearcherInfo(name="evolution", searcher=EvolutionSearcher, summary="regularized evolution",
                      reference="Real, Aggarwal, Huang & Le, AAAI 2019", settings=EvolutionConfig))
