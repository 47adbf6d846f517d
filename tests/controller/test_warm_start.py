"""Searches that start from a known point: both searchers suggest it first, then search around it."""
import math
import random

import pytest
import torch

from autodropout.controller import ControllerConfig
from autodropout.controller.config import START_PROBABILITY, ControllerSettingError
from autodropout.controller.searcher import ControllerSearcher, RandomSearcher
from autodropout.controller.warm_start import allowed_counts, mutate
from autodropout.core.errors import PatternError
from autodropout.search_spaces import TransformerSpace
from tests.helpers import suggested_tokens

# The Transformer space forbids a layer with every sublayer off (choice_mask), so it exercises the repairs.
SPACE = TransformerSpace(2)


def start_point(seed: int = 0) -> list[int]:
    return SPACE.sample(random.Random(100 + seed))


def distance(a, b) -> int:
    return sum(x != y for x, y in zip(a, b))


def free(tokens) -> int:
    return sum(k > 1 for k in allowed_counts(SPACE, tokens))


def suggest_and_complete(searcher, n: int, seed: int = 0) -> list[list[int]]:
    """``n`` suggestions, each completed with a noise reward before the next (so the policy updates)."""
    noise = random.Random(seed)
    tokens = []
    for i in range(n):
        tokens.append(suggested_tokens(searcher, f"t{i}"))
        searcher.on_trial_complete(f"t{i}", {"reward": noise.gauss(0.5, 0.05)})
    return tokens


@pytest.mark.parametrize("cls", [ControllerSearcher, RandomSearcher])
def test_the_first_suggestion_is_the_start_point(cls):
    start = start_point()
    searcher = cls(SPACE, seed=1, start_tokens=start)
    config = searcher.suggest("first")
    assert searcher.live["first"] == start and config["pattern"] == SPACE.decode(start).to_json()


def test_the_controllers_first_samples_stay_near_the_start_and_a_cold_ones_do_not():
    """Over 5 seeds, the 8 samples after the start point: mean Hamming distance to it below 8 of 22
    tokens (22 * (1 - 0.8) = 4.4 at full prior, growing as it fades: measured 6.1 to 7.1), against
    above 10 for a cold controller (uniform: about 12.5; measured 11.2 to 13.1)."""
    for seed in range(5):
        start = start_point(seed)
        warm = suggest_and_complete(ControllerSearcher(SPACE, seed=seed, start_tokens=start), 9, seed)
        cold = suggest_and_complete(ControllerSearcher(SPACE, seed=seed), 9, seed)
        assert sum(distance(t, start) for t in warm[1:]) / 8 < 8, seed
        assert sum(distance(t, start) for t in cold[1:]) / 8 > 10, seed


def test_the_prior_keeps_each_free_decision_with_the_stated_probability_then_fades():
    """Untrained policy, full prior: the start's probability per free decision (geometric mean along
    the start point) is q within 0.03 (the untrained LSTM is near-uniform, not exactly); the prior
    halves every start_half_life suggestions, and without signal the samples drift away from the start."""
    start = start_point()
    for q in (0.5, 0.8, 0.9):
        searcher = ControllerSearcher(SPACE, seed=0, start_tokens=start, start_probability=q)
        with torch.no_grad():
            log_prob = float(searcher.policy.log_prob([start])[0][0])
        assert abs(math.exp(log_prob / free(start)) - q) < 0.03, q
    searcher = ControllerSearcher(SPACE, seed=0, start_tokens=start, config=ControllerConfig(start_half_life=8))
    tokens = suggest_and_complete(searcher, 8)
    assert searcher.policy.prior_scale == pytest.approx(0.5)  # the 9th suggestion is drawn at half the prior
    tokens += suggest_and_complete(searcher, 41, seed=1)
    early, late = (sum(distance(t, start) for t in part) / len(part) for part in (tokens[1:17], tokens[33:49]))
    assert late > early + 2, (early, late)


def test_random_search_mutates_the_start_point_with_the_stated_probability():
    """400 draws: each free decision keeps the start's choice with probability q = 0.8, so the mean
    Hamming distance is about 22 * 0.2 = 4.4 (SE 0.1; repairs of forced decisions add a little)."""
    start = start_point()
    searcher = RandomSearcher(SPACE, seed=2, start_tokens=start)
    draws = [suggested_tokens(searcher, f"t{i}") for i in range(401)][1:]
    expected = free(start) * (1 - START_PROBABILITY)
    assert abs(sum(distance(t, start) for t in draws) / 400 - expected) < 0.5
    assert len({tuple(t) for t in draws}) > 300  # it explores, it does not repeat the start


def test_mutation_repairs_the_decisions_that_earlier_changes_force():
    """A layer whose only sublayer on is ffn_output: switching it off is only allowed while an earlier
    switch is on (choice_mask), so draws that turn every earlier switch off keep it on, and every draw
    is a valid pattern of the space."""
    names = [name for name, _ in SPACE.decision_types]
    layer = [0] * SPACE.tokens_per_site
    layer[names.index("ffn_output")] = 1
    start = layer * SPACE.num_sites
    rng = random.Random(0)
    draws = [mutate(SPACE, start, 0.5, rng) for _ in range(300)]
    for tokens in draws:
        SPACE.decode(tokens)  # raises on a forbidden layer
    switches = [names.index(n) for n in ("query", "key", "value", "attn_output", "ffn_hidden")]
    closing = [t for t in draws if not any(t[i] for i in switches)]
    assert closing and all(t[names.index("ffn_output")] == 1 for t in closing)
    assert any(t[names.index("ffn_output")] == 0 for t in draws)  # free again once an earlier switch is on


@pytest.mark.parametrize("cls", [ControllerSearcher, RandomSearcher])
def test_state_round_trip_keeps_the_start_and_a_resume_does_not_start_again(tmp_path, cls):
    start = start_point()
    searcher = cls(SPACE, seed=3, start_tokens=start, start_probability=0.7)
    suggest_and_complete(searcher, 5)
    path = tmp_path / "state.pt"
    searcher.save(str(path))
    state = torch.load(path, weights_only=True)
    assert state["start_tokens"] == start and state["start_probability"] == 0.7

    restored = cls(SPACE, seed=3)  # built from scratch, as a resumed run builds it: the state wins
    restored.restore(str(path))
    assert restored.start_tokens == start and restored.start_probability == 0.7
    if cls is ControllerSearcher:  # the prior, faded as far as the suggestions so far, not started again
        assert restored.policy.prior_scale == searcher.policy.prior_scale == 0.5 ** (5 / 8)
        assert all(torch.equal(p, q) for p, q in zip(restored.policy.prior, searcher.policy.prior))
    following = [suggested_tokens(s, "next") for s in (searcher, restored)]
    assert following[0] == following[1] != start


def test_a_state_saved_before_the_first_suggestion_starts_the_same_way(tmp_path):
    start = start_point()
    searcher = ControllerSearcher(SPACE, seed=4, start_tokens=start)
    path = tmp_path / "state.pt"
    searcher.save(str(path))
    restored = ControllerSearcher(SPACE, seed=4)
    restored.restore(str(path))
    first, again = suggest_and_complete(searcher, 4), suggest_and_complete(restored, 4)
    assert first == again and first[0] == start


def test_a_state_from_before_start_points_searches_from_scratch():
    state = ControllerSearcher(SPACE, seed=5, config=ControllerConfig()).get_state()
    for key in ("start_tokens", "start_probability"):
        del state[key]
    restored = ControllerSearcher(SPACE, seed=5, start_tokens=start_point())
    restored.set_state(state)
    assert restored.start_tokens is None and restored.start_probability == START_PROBABILITY


def test_bad_start_points_name_the_site_and_field():
    tokens = start_point()
    tokens[1] = 7  # "key" has two choices
    with pytest.raises(PatternError, match="site 0 field 'key'"):
        RandomSearcher(SPACE, start_tokens=tokens)
    with pytest.raises(PatternError, match="expects 22 tokens, got 3"):
        ControllerSearcher(SPACE, start_tokens=[0, 1, 0])
    with pytest.raises(ControllerSettingError, match="start_probability must be a finite number > 0.0 and < 1.0"):
        RandomSearcher(SPACE, start_tokens=start_point(), start_probability=1.0)
    with pytest.raises(ControllerSettingError, match="start_half_life must be a finite number > 0.0"):
        ControllerConfig(start_half_life=0)
