import copy
import io
import math
import random

import pytest
import torch

from autodropout.controller import LSTMPolicy, Reinforce, UpdateStats
from autodropout.search_spaces import ConvSpace, ConvValues


def make(seed=0, **kwargs):
    space = ConvSpace(num_sites=1)
    return Reinforce(LSTMPolicy(space, seed=seed), seed=seed, **kwargs)


def grad_norm(policy):
    return float(torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in policy.parameters() if p.grad is not None])))


def test_learns_a_known_toy_reward_asynchronously():
    # reward = fraction of tokens equal to a fixed target; chance is mean(1/len(choices)) ~= 0.42. The
    # paper's tile-only space, where no choice is forced, so every target is reachable.
    space = ConvSpace(num_sites=2, values=ConvValues(unit=("tile",), rate=(None,)))
    rng = random.Random(1)
    target = torch.tensor([rng.randrange(len(d.choices)) for d in space.decisions])
    chance = sum(1 / len(d.choices) for d in space.decisions) / len(space.decisions)
    assert chance == pytest.approx(0.419, abs=1e-3)
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
    assert sum(t == g for t, g in zip(trainer.policy.greedy(), target.tolist())) >= 18


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


def reference_advantages(rewards, baseline_decay, spread_decay, normalize=True):
    """The rule of reinforce.py's docstring written out plainly: one reward at a time, baseline before
    the reward, spread over the deviations so far (this one included, bias-corrected weights)."""
    baseline, deviations, out = None, [], []
    for r in rewards:
        if baseline is None:
            baseline = r
            out.append(0.0)
            continue
        d = r - baseline
        deviations.append(d)
        weights = [spread_decay ** age for age in range(len(deviations) - 1, -1, -1)]
        spread = math.sqrt(sum(w * x * x for w, x in zip(weights, deviations)) / sum(weights))
        out.append(d / spread if normalize else d)
        baseline = baseline_decay * baseline + (1 - baseline_decay) * r
    return out


@pytest.mark.parametrize("normalize", [True, False])
def test_loss_is_advantage_weighted_log_prob_plus_entropy_bonus(normalize):
    # Changed on purpose: advantages are divided by the running spread (unit-free steps) and each
    # reward's baseline has the earlier rewards of its batch folded in (grouping-independent).
    trainer = make(entropy_weight=0.1, baseline_decay=0.5, spread_decay=0.5, normalize_advantages=normalize)
    tokens = trainer.sample(4)[0].tolist()
    trainer.update([(tokens[0], 0.5)])  # baseline := 0.5, advantage 0
    before = copy.deepcopy(trainer.policy)
    rewards = [1.0, 0.0, 0.25]
    expected_advantages = reference_advantages([0.5] + rewards, 0.5, 0.5, normalize)[1:]
    if normalize:  # by hand: d = 0.5 alone gives spread 0.5, so A = 1
        assert expected_advantages[0] == pytest.approx(1.0)
    log_probs, entropies = before.log_prob(tokens[1:])
    advantages = torch.tensor(expected_advantages)
    expected = -(advantages * log_probs).mean() - 0.1 * entropies.mean()
    log_probs, entropies, expected = log_probs.detach(), entropies.detach(), expected.detach()
    stats = trainer.update(list(zip(tokens[1:], rewards)))
    assert stats.loss == pytest.approx(float(expected), rel=1e-6)
    assert stats.entropy == pytest.approx(float(entropies.mean()), rel=1e-6)
    assert stats.baseline == 0.5 and stats.advantage_mean == pytest.approx((0.5 - 0.75 - 0.125) / 3)


def test_advantages_do_not_depend_on_how_results_are_grouped():
    rewards = [0.3, 0.9, 0.1, 0.7, 0.7, 0.2]
    together, apart = make(), make()
    grouped = apart._advantages(rewards[:2])[1] + apart._advantages(rewards[2:3])[1] + apart._advantages(rewards[3:])[1]
    assert together._advantages(rewards)[1] == grouped
    assert grouped == pytest.approx(reference_advantages(rewards, 0.8, 0.95), rel=1e-12)
    assert (together.baseline, together.spread) == (apart.baseline, apart.spread)
    # Through update(): same statistics after one batch of 6 or batches of 2 and 4.
    tokens = together.sample(6)[0].tolist()
    one, two = make(), make()
    one.update(list(zip(tokens, rewards)))
    two.update(list(zip(tokens[:2], rewards[:2])))
    two.update(list(zip(tokens[2:], rewards[2:])))
    assert (one.baseline, one.spread) == (two.baseline, two.spread)


def test_first_rewards_and_constant_rewards_give_no_policy_gradient():
    trainer = make()
    # First reward: no baseline yet; second: the spread is that one deviation, so |A| = 1.
    assert trainer._advantages([0.7]) == ([0.0], [0.0])
    raw, used = trainer._advantages([0.9])
    assert raw == [pytest.approx(0.2)] and used == [pytest.approx(1.0)]
    # Constant rewards: spread 0 (or float rounding of 0), advantage exactly 0 however long it lasts.
    for constant in (0.0, 0.1, 0.97, -3.3):
        trainer = make()
        used = trainer._advantages([constant] * 50)[1]
        assert used == [0.0] * 50, constant
    # A constant run after real differences decays towards A = 0 smoothly (no blow-up).
    trainer = make()
    used = trainer._advantages([0.2, 0.8] + [0.5] * 200)[1]
    assert max(abs(a) for a in used) <= 1 / math.sqrt(1 - 0.95) + 1e-9
    assert abs(used[-1]) < 1e-6


def test_advantages_are_bounded_whatever_the_outlier():
    trainer = make(spread_decay=0.9)
    used = trainer._advantages([0.5, 0.51, 0.49, 0.5, 1e6, 0.5])[1]
    assert all(abs(a) <= 1 / math.sqrt(1 - 0.9) + 1e-9 for a in used)


@pytest.mark.parametrize("a, b", [(0.97, 0.02), (-3.0, 250.0), (1e-3, 1e-4)])
def test_same_steps_for_affine_rewards(a, b):
    """r and a + b * r (b > 0) give the same updates: same parameters, to float32 rounding."""
    rng = random.Random(0)
    plain, affine = make(seed=2, entropy_weight=0.01), make(seed=2, entropy_weight=0.01)
    for _ in range(10):
        tokens = plain.sample(3)[0].tolist()
        rewards = [rng.random() for _ in tokens]
        stats = plain.update(list(zip(tokens, rewards)))
        other = affine.update([(t, a + b * r) for t, r in zip(tokens, rewards)])
        assert other.loss == pytest.approx(stats.loss, rel=1e-5, abs=1e-6)
        assert other.spread == pytest.approx(b * stats.spread, rel=1e-9)
    for p, q in zip(plain.policy.parameters(), affine.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_raw_advantages_depend_on_units():
    # The original ENAS rule, kept as an option for comparison: the same search in other units moves differently.
    a, b = make(seed=2, normalize_advantages=False), make(seed=2, normalize_advantages=False)
    tokens = a.sample(4)[0].tolist()
    for t, r in zip(tokens, [0.1, 0.9, 0.4, 0.6]):
        a.update([(t, r)])
        b.update([(t, 0.97 + 0.02 * r)])
    assert not torch.equal(a.policy.lstm.weight_hh_l0, b.policy.lstm.weight_hh_l0)


def test_fresh_samples_give_plain_reinforce_and_stale_ones_are_clipped():
    fresh, plain = make(seed=4, clip_ratio=0.2), make(seed=4, clip_ratio=None)
    tokens, log_probs, _ = fresh.sample(3)
    fresh.update([(tokens[0].tolist(), 0.0)])
    plain.update([(tokens[0].tolist(), 0.0)])
    # Behaviour log-prob = current log-prob: ratio 1, the same gradient as REINFORCE.
    current, _ = fresh.policy.log_prob(tokens[1:])
    fresh.update([(t, 1.0, float(lp)) for t, lp in zip(tokens[1:].tolist(), current.detach())])
    plain.update([(t, 1.0) for t in tokens[1:].tolist()])
    for p, q in zip(fresh.policy.parameters(), plain.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # A stale sample already made 2x likelier than by the policy that drew it: with a positive
    # advantage PPO's clip stops its push (zero policy-gradient), without the clip it pushes on.
    clipped, unclipped = make(seed=5, entropy_weight=0.0), make(seed=5, entropy_weight=0.0, clip_ratio=None)
    t = clipped.sample(2)[0].tolist()
    for trainer in (clipped, unclipped):
        trainer.update([(t[0], 0.0)])
    now = float(clipped.policy.log_prob([t[1]])[0].detach()[0])
    stale = now - math.log(2.0)
    clipped.update([(t[1], 1.0, stale)])
    unclipped.update([(t[1], 1.0, stale)])
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in clipped.policy.parameters())
    assert max(float(p.grad.abs().max()) for p in unclipped.policy.parameters() if p.grad is not None) > 0


def test_sgd_takes_a_plain_gradient_step():
    trainer = make(optimizer="sgd", lr=0.5, grad_clip=None, entropy_weight=0.0)
    tokens = trainer.sample(2)[0].tolist()
    trainer.update([(tokens[0], 0.0)])
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    trainer.update([(tokens[1], 1.0)])  # A = 1
    for p, q in zip(trainer.policy.parameters(), before):
        grad = torch.zeros_like(q) if p.grad is None else p.grad
        torch.testing.assert_close(p.detach(), q - 0.5 * grad, rtol=0, atol=1e-7)


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
    with pytest.raises(ValueError, match=r"tokens must have shape \(n, 10\)"):
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
        "loss", "mean_reward", "max_reward", "baseline", "entropy", "grad_norm", "advantage_mean", "spread",
        "step", "num_samples",
    }
