import math
import subprocess
import sys

import pytest
import torch

from autodropout.controller import LSTMPolicy, Policy
from autodropout.search_spaces import ConvSpace, ConvValues, EmbeddingValues, TransformerSpace

SPACES = [ConvSpace(num_sites=3), TransformerSpace(num_sites=2), TransformerSpace(num_sites=2, num_embeddings=2)]
#: The paper's tile-only conv space: no decision is forced, so every greedy path sees every choice.
TILES = ConvValues(unit=("tile",), rate=(None,))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_sample_shapes_ranges_and_decodable(space):
    policy = LSTMPolicy(space)
    tokens, log_probs, entropies = policy.sample(50, generator=gen(0))
    L = len(space.decisions)
    assert tokens.shape == (50, L) and tokens.dtype == torch.long
    assert log_probs.shape == (50,) and entropies.shape == (50,)
    counts = torch.tensor([len(d.choices) for d in space.decisions])
    assert bool((tokens >= 0).all()) and bool((tokens < counts).all())
    # Every choice of a 2-way decision shows up in 50 samples of a near-uniform policy.
    assert all(len(set(tokens[:, i].tolist())) == 2 for i, d in enumerate(space.decisions) if len(d.choices) == 2)
    assert bool((log_probs < 0).all())
    assert bool((entropies > 0).all()) and bool((entropies <= policy.max_entropy + 1e-4).all())
    for row in tokens.tolist():
        assert space.encode(space.decode(row)) == row


@pytest.mark.parametrize("space", SPACES, ids=repr)
@pytest.mark.parametrize("layers", [1, 2])
def test_log_prob_matches_the_log_prob_recorded_at_sampling(space, layers):
    policy = LSTMPolicy(space, layers=layers, seed=3)
    tokens, log_probs, entropies = policy.sample(16, generator=gen(1))
    again, again_entropies = policy.log_prob(tokens)
    torch.testing.assert_close(again, log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(again_entropies, entropies, rtol=0, atol=1e-5)
    assert again.requires_grad
    # Plain lists work, and a sub-batch gives the same per-row values.
    from_lists, _ = policy.log_prob(tokens[:3].tolist())
    torch.testing.assert_close(from_lists, log_probs[:3], rtol=0, atol=1e-5)


def test_log_prob_sums_the_per_step_softmax_along_the_greedy_path():
    space = ConvSpace(num_sites=1)
    policy = LSTMPolicy(space, seed=5)
    greedy = policy.greedy()
    probs = policy.choice_probabilities()
    expected = sum(math.log(float(p[t])) for p, t in zip(probs.values(), greedy))
    log_prob, _ = policy.log_prob([greedy])
    assert float(log_prob.detach()[0]) == pytest.approx(expected, abs=1e-4)


def uniform_entropy(space, row):
    """Entropy (nats) of the uniform choice among the allowed ones at every position of ``row``."""
    total = 0.0
    for position, decision in enumerate(space.decisions):
        allowed = space.choice_mask(row[:position])
        total += math.log(len(decision.choices) if allowed is None else sum(allowed))
    return total


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_untrained_policy_is_near_uniform(space):
    policy = LSTMPolicy(space, seed=0)
    tokens, log_probs, entropies = policy.sample(64, generator=gen(2))
    # ENAS init (uniform in +-0.1) keeps logits within ~0.1 of each other: >= 98% of the entropy of
    # the uniform choice among the allowed choices (all of them, except a forced Transformer switch).
    uniform = torch.tensor([uniform_entropy(space, row) for row in tokens.tolist()])
    assert bool((entropies > 0.98 * uniform).all()) and bool((uniform <= policy.max_entropy).all())
    assert float(log_probs.mean()) == pytest.approx(-float(uniform.mean()), rel=0.02)


def test_max_entropy_is_sum_of_log_choice_counts():
    space = ConvSpace(num_sites=2)
    per_site = (math.log(4) + math.log(19) + math.log(16) + math.log(3) + math.log(4) + math.log(7) + 2 * math.log(5)
                + 2 * math.log(2))
    assert LSTMPolicy(space).max_entropy == pytest.approx(2 * per_site)


def test_seeded_determinism():
    space = ConvSpace(num_sites=2)
    a, b, c = LSTMPolicy(space, seed=7), LSTMPolicy(space, seed=7), LSTMPolicy(space, seed=8)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.lstm.weight_hh_l0, c.lstm.weight_hh_l0)
    first, second, other = a.sample(8, gen(11)), a.sample(8, gen(11)), a.sample(8, gen(12))
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    assert not torch.equal(first[0], other[0])


def test_parameter_init_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    LSTMPolicy(ConvSpace(num_sites=1))
    assert torch.equal(torch.rand(3), expected)


def _policy_with_size_bias(temperature, tanh_constant):
    """Head of 'size' (position 2, 16 choices) outputs exactly [4, 0, ..., 0] whatever the LSTM state."""
    policy = LSTMPolicy(ConvSpace(1, TILES), temperature=temperature, tanh_constant=tanh_constant)
    with torch.no_grad():
        policy.heads[2].weight.zero_()
        policy.heads[2].bias.zero_()
        policy.heads[2].bias[0] = 4.0
    return policy


@pytest.mark.parametrize(
    "temperature, tanh_constant, logit",
    [
        (2.0, 2.5, 2.5 * math.tanh(4.0 / 2.0)),  # divide by the temperature, then clip (ENAS order)
        (2.0, None, 4.0 / 2.0),
        (1.0, 2.5, 2.5 * math.tanh(4.0)),
        (1.0, 0.5, 0.5 * math.tanh(4.0)),
    ],
)
def test_temperature_then_tanh_clip_hand_computed(temperature, tanh_constant, logit):
    policy = _policy_with_size_bias(temperature, tanh_constant)
    probs = policy.choice_probabilities()["site 0.size"]
    expected_top = math.exp(logit) / (math.exp(logit) + 15)
    assert float(probs[0]) == pytest.approx(expected_top, rel=1e-5)
    assert probs[1:].tolist() == pytest.approx([(1 - expected_top) / 15] * 15, rel=1e-5)
    assert policy.greedy()[2] == 0


def test_higher_temperature_gives_higher_entropy():
    space = ConvSpace(1, TILES)
    cold = LSTMPolicy(space, temperature=0.2, tanh_constant=None, seed=1)
    hot = LSTMPolicy(space, temperature=5.0, tanh_constant=None, seed=1)
    _, _, cold_h = cold.sample(32, gen(0))
    _, _, hot_h = hot.sample(32, gen(0))
    assert float(cold_h.mean()) < float(hot_h.mean()) < hot.max_entropy


def test_choice_probabilities_follow_the_greedy_path():
    space = TransformerSpace(num_sites=2)
    policy = LSTMPolicy(space, seed=4)
    probs = policy.choice_probabilities()
    assert list(probs) == [d.key for d in space.decisions]
    for p, decision in zip(probs.values(), space.decisions):
        assert p.shape == (len(decision.choices),)
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    assert policy.greedy() == [int(p.argmax()) for p in probs.values()]


def test_satisfies_the_policy_protocol():
    assert isinstance(LSTMPolicy(ConvSpace(num_sites=1)), Policy)
    assert "tanh_constant=2.5" in repr(LSTMPolicy(ConvSpace(num_sites=1)))


def test_bad_tokens_name_the_position_and_decision():
    policy = LSTMPolicy(ConvSpace(num_sites=1))
    good = [0] * 10
    bad = list(good)
    bad[5] = 7  # rotate has 7 choices
    with pytest.raises(ValueError, match=r"tokens\[:, 5\] \(site 0\.rotate\) must be in 0\.\.6"):
        policy.log_prob([good, bad])
    with pytest.raises(ValueError, match=r"shape \(n, 10\), got \(1, 9\)"):
        policy.log_prob([good[:9]])
    with pytest.raises(ValueError, match="integer tensor"):
        policy.log_prob(torch.zeros(1, 10))
    with pytest.raises(ValueError, match="n must be a positive int"):
        policy.sample(0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden": 0}, "hidden must be a positive int"),
        ({"embedding": 2.5}, "embedding must be a positive int"),
        ({"layers": True}, "layers must be a positive int"),
        ({"temperature": 0.0}, "temperature must be a positive finite number"),
        ({"tanh_constant": -1.0}, "tanh_constant must be a positive finite number"),
        ({"seed": "0"}, "seed must be an int"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSTMPolicy(ConvSpace(num_sites=1), **kwargs)


def test_space_must_be_a_search_space():
    with pytest.raises(TypeError, match="space must be a SearchSpace"):
        LSTMPolicy([("size", (1, 2))])


def test_importing_the_controller_does_not_import_ray():
    code = (
        "import sys, autodropout.controller as c; c.LSTMPolicy; c.Reinforce;"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import autodropout.controller as controller

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = controller.Nope


def test_the_policy_never_samples_a_layer_the_space_forbids():
    # TransformerSpace forbids a layer with all six sublayer switches off: after five off switches
    # the policy's ffn_output choice "false" gets probability 0, and everything stays exact.
    space = TransformerSpace(num_sites=2)
    policy = LSTMPolicy(space, seed=1)
    tokens, log_probs, entropies = policy.sample(2000, generator=gen(5))
    switches = tokens.view(2000, 2, 11)[:, :, :6]
    assert bool((switches.sum(-1) > 0).all())
    forced = (switches[:, :, :5].sum(-1) == 0)
    # 1/32 of 4000 layers (125, sigma 11) had to be forced; allow 5 sigma.
    assert abs(int(forced.sum()) - 125) < 55
    again, again_entropies = policy.log_prob(tokens)
    torch.testing.assert_close(again, log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(again_entropies, entropies, rtol=0, atol=1e-5)
    assert bool(torch.isfinite(again).all()) and bool(torch.isfinite(again_entropies).all())
    for row in tokens[:200].tolist():
        assert space.encode(space.decode(row)) == row


def test_a_forced_choice_costs_no_log_probability_and_no_entropy():
    space = TransformerSpace(num_sites=1)
    policy = LSTMPolicy(space, seed=2)
    off_then_on = [0, 0, 0, 0, 0, 1] + [0] * 5
    on_then_on = [1, 0, 0, 0, 0, 1] + [0] * 5
    tokens = torch.tensor([off_then_on, on_then_on])
    _, log_probs, entropies, steps = policy._unroll(2, lambda _, position: tokens[:, position])
    forced, free = steps[5].detach().exp()
    assert forced.tolist() == [0.0, 1.0]  # the forced step: log p = 0, entropy 0
    assert float(free.min()) > 0.3  # the free one is near uniform
    # Gradients through the masked step stay finite (no 0 * inf) and reach the parameters.
    (log_probs.sum() + entropies.sum()).backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


def test_log_prob_of_a_forbidden_token_is_an_error():
    space = TransformerSpace(num_sites=2)
    policy = LSTMPolicy(space)
    good = space.sample(0)
    bad = good[:11] + [0, 0, 0, 0, 0, 0] + good[17:]
    with pytest.raises(ValueError, match=r"tokens\[1, 16\] \(site 1\.ffn_output\) = 0 is a choice the space forbids"):
        policy.log_prob([good, bad])


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_heads_per_position_or_shared_by_decision_type(space):
    own, shared = LSTMPolicy(space, seed=1), LSTMPolicy(space, seed=1, share_heads=True)
    assert len(own.heads) == len(own.embeddings) == len(space.decisions)
    # Shared: one per (group, name), so the embedding sites' "size" is not the layers'.
    assert len(shared.heads) == len(shared.embeddings) == len(space.decision_types) + len(
        space.embedding_types if space.num_embeddings else ())
    assert [h.out_features for h in own.heads] == [len(d.choices) for d in space.decisions]
    assert "share_heads=True" in repr(shared) and "share_heads=False" in repr(own)
    for policy in (own, shared):
        tokens, log_probs, entropies = policy.sample(8, generator=gen(0))
        again, again_entropies = policy.log_prob(tokens)
        torch.testing.assert_close(again, log_probs, rtol=0, atol=1e-5)
        torch.testing.assert_close(again_entropies, entropies, rtol=0, atol=1e-5)
    # Own heads: the bias of site 1's unit head moves site 1's distribution only.
    if isinstance(space, ConvSpace):
        before = own.choice_probabilities()["site 0.unit"]
        with torch.no_grad():
            own.heads[space.tokens_per_site].bias[3] = 4.0
        probs = own.choice_probabilities()
        assert float(probs["site 1.unit"][3]) > 0.4  # tanh clip: 2.5
        assert torch.equal(probs["site 0.unit"], before)  # site 0 untouched


def test_share_heads_must_be_a_bool():
    with pytest.raises(ValueError, match="share_heads must be true or false"):
        LSTMPolicy(ConvSpace(num_sites=1), share_heads=1)


def test_shared_heads_of_embedding_and_layer_decisions_are_separate():
    # Keyed by (group, name): both embedding sites share one "size" head, both layers another.
    space = TransformerSpace(num_sites=2, num_embeddings=2,
                             embedding_values=EmbeddingValues(size=(1, 2)))
    policy = LSTMPolicy(space, seed=0, share_heads=True)
    head_of = {d.key: policy._types[i] for i, d in enumerate(space.decisions)}
    assert head_of["embedding 0.size"] == head_of["embedding 1.size"]
    assert head_of["site 0.size"] == head_of["site 1.size"] != head_of["embedding 0.size"]
    assert policy.heads[head_of["embedding 0.size"]].out_features == 2
    assert policy.heads[head_of["site 0.size"]].out_features == len(space.values.size)
