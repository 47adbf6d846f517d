import copy
import io
import math
import random

import pytest
import torch

from autodropout.controller import LSTMPolicy, Reinforce, UpdateStats
from autodropout.search_spaces import ConvSpace


def make(seed=0, **kwargs):
    space = ConvSpace(num_sites=1)
    return Reinforce(LSTMPolicy(space, seed=seed), seed=seed, **kwargs)


def grad_norm(policy):
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in policy.parameters() if p.grad is not None])))


def test_learns_a_known_toy_reward_asynchronously():
    # reward = fraction of tokens equal to a fixed target; chance is mean(1/len(choices)) ~= 0.28.
    space = ConvSpace(num_sites=2)
    rng = random.Random(1)
    target = torch.tensor([rng.randrange(len(d.choices)) for d in space.decisions])
    chance = sum(1 / len(d.choices) for d in space.decisions) / len(space.decisions)
    assert chance == pytest.approx(0.280, abs=1e-3)
    trainer = Reinforce(LSTMPolicy(space, seed=0), lr=3e-3, seed=0)

    def reward(tokens):
        return (tokens == target).float().mean(1).tolist()

    # Asynchronous: each batch is scored and fed back one update after it was sampled.
    pending = trainer.sample(8)[0]
    for _ in range(200):
        tokens, pending = pending, trainer.sample(8)[0]
        stats = trainer.update(list(zip(tokens.tolist(), reward(tokens))))
    assert stats.step == 200
    final = sum(reward(trainer.sample(64)[0])) / 64
    assert final > 0.8, final
    assert sum(t == g for t, g in zip(trainer.policy.greedy(), target.tolist())) >= 14


def test_baseline_is_an_exact_moving_average_in_arrival_order():
    trainer = make(baseline_decay=0.95)
    a, b, c = trainer.sample(3)[0].tolist()
    assert trainer.baseline is None
    first = trainer.update([(a, 1.0), (b, 0.0)])
    # The first reward initialises the baseline; advantages use it, then both rewards are folded in.
    assert first.baseline == 1.0
    assert first.advantage_mean == pytest.approx((0.0 + -1.0) / 2, abs=1e-15)
    assert trainer.baseline == pytest.approx(0.95, abs=1e-15)
    second = trainer.update([(c, 0.5)])
    assert second.baseline == pytest.approx(0.95, abs=1e-15)
    assert second.advantage_mean == pytest.approx(0.5 - 0.95, abs=1e-15)
    assert trainer.baseline == pytest.approx(0.95 * 0.95 + 0.05 * 0.5, abs=1e-15)
    assert (first.mean_reward, first.max_reward, first.num_samples, second.step) == (0.5, 1.0, 2, 2)


def test_baseline_does_not_depend_on_how_results_are_grouped():
    rewards = [0.3, 0.9, 0.1, 0.7]
    together, apart = make(), make()
    tokens = together.sample(4)[0].tolist()
    together.update(list(zip(tokens, rewards)))
    for t, r in zip(tokens, rewards):
        apart.update([(t, r)])
    assert together.baseline == apart.baseline


def test_loss_is_advantage_weighted_log_prob_plus_entropy_bonus():
    trainer = make(entropy_weight=0.1)
    tokens = trainer.sample(4)[0].tolist()
    trainer.update([(tokens[0], 0.5)])  # baseline := 0.5
    before = copy.deepcopy(trainer.policy)
    rewards = [1.0, 0.0, 0.25]
    log_probs, entropies = before.log_prob(tokens[1:])
    advantages = torch.tensor([r - 0.5 for r in rewards])
    expected = -(advantages * log_probs).mean() - 0.1 * entropies.mean()
    log_probs, entropies, expected = log_probs.detach(), entropies.detach(), expected.detach()
    stats = trainer.update(list(zip(tokens[1:], rewards)))
    assert stats.loss == pytest.approx(float(expected), rel=1e-6)
    assert stats.entropy == pytest.approx(float(entropies.mean()), rel=1e-6)


def test_positive_advantage_makes_the_sample_more_likely():
    trainer = make(lr=1e-2, entropy_weight=0.0)
    tokens = trainer.sample(2)[0].tolist()
    trainer.update([(tokens[0], 0.0)])
    before, _ = trainer.policy.log_prob([tokens[1]])
    trainer.update([(tokens[1], 1.0)])
    after, _ = trainer.policy.log_prob([tokens[1]])
    assert float(after.detach()) > float(before.detach()) + 0.1


def test_gradient_clipping_bounds_the_norm():
    clipped = make(grad_clip=0.01)
    tokens = clipped.sample(2)[0].tolist()
    stats = clipped.update([(tokens[0], 100.0), (tokens[1], -100.0)])
    assert stats.grad_norm > 1.0
    assert grad_norm(clipped.policy) <= 0.01 * (1 + 1e-5)
    unclipped = make(grad_clip=None)
    stats = unclipped.update([(tokens[0], 100.0), (tokens[1], -100.0)])
    assert grad_norm(unclipped.policy) == pytest.approx(stats.grad_norm, rel=1e-5)
    assert stats.grad_norm > 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.5", None, True])
def test_non_finite_or_non_numeric_reward_raises_before_any_change(bad):
    trainer = make()
    tokens = trainer.sample(2)[0].tolist()
    with pytest.raises(ValueError, match=r"samples\[1\]: reward must be a finite number"):
        trainer.update([(tokens[0], 0.5), (tokens[1], bad)])
    assert trainer.step == 0 and trainer.baseline is None


def test_malformed_batches_raise():
    trainer = make()
    with pytest.raises(ValueError, match="non-empty list"):
        trainer.update([])
    with pytest.raises(ValueError, match=r"samples\[0\] must be a \(tokens, reward\) pair"):
        trainer.update([([0] * 8, 1.0, 2)])
    with pytest.raises(ValueError, match=r"samples\[0\]: tokens must be a list of ints"):
        trainer.update([(3, 1.0)])
    with pytest.raises(ValueError, match=r"tokens must have shape \(n, 8\)"):
        trainer.update([([0] * 7, 1.0)])


def _roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("updates", [0, 3])
def test_state_round_trip_reproduces_the_next_samples_and_update_exactly(updates):
    original = make(seed=1, lr=1e-2)
    for _ in range(updates):
        tokens = original.sample(4)[0]
        original.update([(t, float(t[0] % 3)) for t in tokens])  # tensor rows are accepted too
    state = _roundtrip(original.state_dict())
    restored = make(seed=99, lr=1e-2)  # different init and generator: everything must come from the state
    restored.load_state_dict(state)
    assert (restored.step, restored.baseline) == (original.step, original.baseline)

    next_a, next_b = original.sample(4), restored.sample(4)
    assert all(torch.equal(x, y) for x, y in zip(next_a, next_b))
    batch = [(t, float(t[1] % 2)) for t in next_a[0].tolist()]
    stats_a, stats_b = original.update(batch), restored.update(batch)
    assert stats_a == stats_b
    for (name, p), q in zip(original.policy.named_parameters(), restored.policy.parameters()):
        assert torch.equal(p, q), name
    assert torch.equal(original.sample(4)[0], restored.sample(4)[0])


def test_load_state_dict_names_missing_and_unknown_keys():
    trainer = make()
    state = trainer.state_dict()
    with pytest.raises(KeyError, match="missing key 'baseline'"):
        trainer.load_state_dict({k: v for k, v in state.items() if k != "baseline"})
    with pytest.raises(KeyError, match="unknown key 'extra'"):
        trainer.load_state_dict({**state, "extra": 1})
    with pytest.raises(ValueError, match="'step' must be a non-negative int"):
        trainer.load_state_dict({**state, "step": -1})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"entropy_weight": -1.0}, "entropy_weight must be a finite number >= 0"),
        ({"baseline_decay": 1.0}, r"baseline_decay must be a finite number >= 0.0 and < 1.0"),
        ({"grad_clip": 0}, "grad_clip must be a finite number > 0"),
        ({"seed": 1.5}, "seed must be an int"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reinforce(LSTMPolicy(ConvSpace(num_sites=1)), **kwargs)


def test_policy_must_implement_the_protocol():
    with pytest.raises(TypeError, match="policy must implement"):
        Reinforce(torch.nn.Linear(2, 2))


def test_stats_as_dict():
    trainer = make()
    stats = trainer.update([(trainer.sample(1)[0][0].tolist(), 0.5)])
    assert isinstance(stats, UpdateStats)
    assert set(stats.as_dict()) == {
        "loss", "mean_reward", "max_reward", "baseline", "entropy", "grad_norm", "advantage_mean", "step",
        "num_samples",
    }
