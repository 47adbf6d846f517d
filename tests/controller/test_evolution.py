"""Regularized evolution (Real et al. 2019) over the pattern tokens: mutation, tournament, aging, the
rule for unusable results, and a resume that continues exactly."""
import random

import pytest
import torch

from autodropout.controller.searchers.evolution import EvolutionConfig, EvolutionSearcher, allowed, mutate_one
from autodropout.core.errors import ConfigError
from autodropout.search_spaces import ConvSpace, TransformerSpace
from tests.helpers import suggested_tokens

SPACES = [ConvSpace(num_sites=3), TransformerSpace(num_sites=2)]


@pytest.mark.parametrize("space", SPACES, ids=["conv", "transformer"])
def test_a_mutation_changes_one_free_decision_and_repairs_only_what_it_forbids(space):
    rng = random.Random(0)
    for _ in range(300):
        parent = space.sample(rng)
        child = mutate_one(space, parent, rng)
        space.decode(child)  # a valid pattern of the space
        changed = [p for p in range(len(parent)) if child[p] != parent[p]]
        assert changed, "a mutation always changes something"
        first = changed[0]
        assert len(allowed(space, parent[:first], first)) > 1  # a free decision, never a forced one
        for later in changed[1:]:  # any other change is a repair: the parent's token is no longer allowed
            assert parent[later] not in allowed(space, child[:later], later)


def is_one_mutation(space, parent, child):
    """``child`` is ``parent`` with one free decision changed and only repairs after it."""
    changed = [p for p in range(len(parent)) if child[p] != parent[p]]
    return bool(changed) and len(allowed(space, parent[:changed[0]], changed[0])) > 1 and all(
        parent[later] not in allowed(space, child[:later], later) for later in changed[1:])


def test_every_free_decision_is_mutated_sometimes_and_no_forced_one_ever():
    space = ConvSpace(num_sites=3)
    rng = random.Random(1)
    parent = space.sample(rng)
    free = {p for p in range(len(parent)) if len(allowed(space, parent[:p], p)) > 1}
    assert 0 < len(free) < len(parent)  # the space forces some decisions of this parent
    first_changed = set()
    for _ in range(3000):
        child = mutate_one(space, parent, rng)
        first_changed.add(next(p for p in range(len(parent)) if child[p] != parent[p]))
    assert first_changed == free


def complete(searcher, trial_id, reward, status_epoch=None):
    result = {"reward": reward} if status_epoch is None else {"reward": reward, "epoch": status_epoch}
    searcher.on_trial_complete(trial_id, result)


def test_the_population_ages_and_only_full_rewards_enter_it():
    space = TransformerSpace(num_sites=1)
    s = EvolutionSearcher(space, seed=0, epochs=3, config=EvolutionConfig(population=3, sample_size=2))
    for i in range(4):
        s.suggest(f"t{i}")
        complete(s, f"t{i}", 0.1 * i, status_epoch=3)
    assert [r for _, r in s.members] == pytest.approx([0.1, 0.2, 0.3])  # the oldest (t0) left
    s.suggest("stopped"), s.suggest("failed"), s.suggest("bad"), s.suggest("paused")
    complete(s, "stopped", 0.9, status_epoch=1)  # a scheduler stopped it: lower fidelity
    s.on_trial_complete("failed", None, error=True)
    complete(s, "bad", float("nan"), status_epoch=3)
    s.on_trial_result("paused", {"reward": 0.95, "epoch": 2})
    s.on_trial_complete("paused", None)  # HyperBand stops a paused trial: stopped at epoch 2
    assert [h["status"] for h in s.history[-4:]] == ["stopped", "error", "invalid", "stopped"]
    assert [r for _, r in s.members] == pytest.approx([0.1, 0.2, 0.3])


def test_a_full_population_suggests_a_mutation_of_the_tournament_winner():
    space = TransformerSpace(num_sites=2)
    s = EvolutionSearcher(space, seed=1, config=EvolutionConfig(population=4, sample_size=4))
    tokens = []
    for i in range(4):
        s.suggest(f"t{i}")
        tokens.append(s.live[f"t{i}"])
        complete(s, f"t{i}", [0.2, 0.9, 0.4, 0.1][i])
    for i in range(20):  # sample_size = population: the winner is always the best member, t1 (0.9)
        s.suggest(f"c{i}")
        child = s.live.pop(f"c{i}")
        differ = [p for p in range(len(child)) if child[p] != tokens[1][p]]
        assert differ and len(allowed(space, tokens[1][:differ[0]], differ[0])) > 1


class SpyRandom(random.Random):
    """Records the contestants of each tournament."""

    def sample(self, population, k, **kwargs):
        self.contestants = super().sample(population, k, **kwargs)
        return self.contestants


def test_the_parent_is_the_best_of_the_sampled_contestants_not_of_the_population():
    space = ConvSpace(num_sites=3)
    s = EvolutionSearcher(space, seed=4, config=EvolutionConfig(population=8, sample_size=2))
    s.rng = SpyRandom(4)
    rewards = random.Random(0)
    for i in range(8):
        s.suggest(f"t{i}")
        complete(s, f"t{i}", rewards.random())
    not_the_population_best = 0
    for i in range(40):
        population_best = max(s.members, key=lambda m: m[1])
        s.suggest(f"c{i}")
        winner = max(s.rng.contestants, key=lambda m: m[1])
        assert is_one_mutation(space, winner[0], s.live[f"c{i}"])
        not_the_population_best += winner is not population_best
        complete(s, f"c{i}", rewards.random())
    assert not_the_population_best > 5  # a tournament of 2 of 8 often misses the best


def test_while_the_population_fills_suggestions_are_random_search_s_even_with_trials_live():
    from autodropout.controller.searcher import RandomSearcher

    space = TransformerSpace(num_sites=2)
    s = EvolutionSearcher(space, seed=5, config=EvolutionConfig(population=4, sample_size=2))
    r = RandomSearcher(space, seed=5)
    for i in range(4):
        assert suggested_tokens(s, f"t{i}") == suggested_tokens(r, f"t{i}")
    for i in range(3):
        complete(s, f"t{i}", 0.1 * i)
    assert suggested_tokens(s, "t4") == suggested_tokens(r, "t4")  # 3 finished of 4: still filling
    complete(s, "t3", 0.5), complete(s, "t4", 0.6)
    child = suggested_tokens(s, "t5")  # full: a mutation of a member
    assert any(is_one_mutation(space, tokens, child) for tokens, _ in s.members)


def test_before_the_population_is_full_a_start_point_is_mutated_as_random_search_does():
    space = ConvSpace(num_sites=3)
    start = space.sample(random.Random(5))
    s = EvolutionSearcher(space, seed=2, start_tokens=start, start_probability=0.9)
    assert suggested_tokens(s, "a") == start  # the start point itself first
    near = [suggested_tokens(s, f"b{i}") for i in range(10)]
    assert sum(sum(x != y for x, y in zip(t, start)) for t in near) / 10 < 0.3 * len(start)


def drive(searcher, first, count, rng):
    for i in range(first, first + count):
        searcher.suggest(f"t{i}")
        tokens = searcher.live[f"t{i}"]
        complete(searcher, f"t{i}", sum(tokens) / 100 + rng.random() / 100)
    return [h["tokens"] for h in searcher.history]


def test_a_restored_searcher_continues_exactly_as_an_uninterrupted_one(tmp_path):
    space = ConvSpace(num_sites=3)
    config = EvolutionConfig(population=5, sample_size=2)
    whole = drive(EvolutionSearcher(space, seed=3, config=config), 0, 30, random.Random(0))
    first = EvolutionSearcher(space, seed=3, config=config)
    rng = random.Random(0)
    drive(first, 0, 12, rng)
    path = tmp_path / "state.pt"
    first.save(str(path))
    state = torch.load(path, weights_only=True)  # plain types only
    assert len(state["members"]) == 5 and state["config"] == {"population": 5, "sample_size": 2}
    restored = EvolutionSearcher(space, seed=99)  # the saved settings and seed win
    restored.restore(str(path))
    assert drive(restored, 12, 18, rng) == whole


@pytest.mark.parametrize("settings, message", [
    ({"population": 1}, "search.searchers.evolution.population: expected an int of at least 2, got 1"),
    ({"population": 4, "sample_size": 5},
     r"search.searchers.evolution.sample_size: expected an int from 1 to population \(4\), got 5"),
    ({"population": 4.0}, "search.searchers.evolution.population: expected an integer, got 4.0"),
    ({"populaton": 8}, r"search.searchers.evolution.populaton: unknown key \(valid keys: population, sample_size\)"),
])
def test_bad_settings_name_the_key(settings, message):
    from autodropout.runs.experiment import experiment_from_dict
    from tests.tiny import TINY_VISION

    search = {**TINY_VISION["search"], "controller": "random", "searchers": {"evolution": settings}}
    with pytest.raises(ConfigError, match=f"^{message}$"):  # checked even while another searcher runs
        experiment_from_dict({**TINY_VISION, "search": search})


def test_the_settings_reach_the_searcher_and_the_old_flat_keys_are_gone():
    from autodropout.runs.experiment import experiment_from_dict
    from tests.tiny import TINY_VISION

    search = {**TINY_VISION["search"], "controller": "evolution", "searchers": {"evolution": {"population": 6}}}
    settings = experiment_from_dict({**TINY_VISION, "search": search}).search.searcher_settings()
    assert settings == EvolutionConfig(population=6) and settings.tournament == 3  # S: half of P by default
    assert EvolutionConfig().tournament == 8 and EvolutionConfig(population=9, sample_size=9).tournament == 9
    with pytest.raises(ConfigError, match="search.population: unknown key"):
        experiment_from_dict({**TINY_VISION, "search": {**TINY_VISION["search"], "population": 6}})
