"""The Ray searcher driven directly, without a cluster."""
import dataclasses
import math
import random

import pytest
import torch

from autodropout.controller import ControllerConfig
from autodropout.controller.searcher import ControllerSearcher, RandomSearcher
from autodropout.search_spaces import ConvSpace, TransformerSpace, pattern_from_json, space_to_json
from tests.helpers import suggested_tokens

SETTINGS = {f.name for f in dataclasses.fields(ControllerConfig)}


def make(cls=ControllerSearcher, **kwargs):
    """A searcher on ConvSpace(3); controller settings (``samples_per_update=...``) go into its config."""
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("mode", "max")
    if cls is ControllerSearcher:
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in SETTINGS}
        settings.setdefault("samples_per_update", 2)
        kwargs["config"] = ControllerConfig(**settings)
    return cls(ConvSpace(3), metric="reward", **kwargs)


def test_suggestion_holds_the_pattern_once_and_the_seed():
    searcher = make()
    config = searcher.suggest("t1")
    assert set(config) == {"pattern", "seed"}  # the tokens follow from the pattern and the space
    assert config["seed"] == 3
    space = ConvSpace(3)
    assert searcher.live == {"t1": space.encode(pattern_from_json(space, config["pattern"]))}


def test_a_space_with_embedding_sites_suggests_them_too():
    space = TransformerSpace(2, num_embeddings=1)
    searcher = RandomSearcher(space, seed=0)
    config = searcher.suggest("t1")
    pattern = space.decode(searcher.live["t1"])
    assert (config["pattern"], config["embeddings"]) == (pattern.to_json(), pattern.embeddings_to_json())
    assert len(config["embeddings"]) == 1


def test_metric_and_mode_come_from_the_constructor():
    searcher = make()
    assert searcher.set_search_properties("other", "min", {}) is True
    assert (searcher.metric, searcher.mode) == ("reward", "max")


def test_policy_updates_every_samples_per_update_valid_results():
    searcher = make()
    for i in range(5):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {"reward": 0.5})
    assert searcher.trainer.step == 0 and len(searcher.buffer) == 1
    searcher.on_trial_complete("t1", {"reward": 0.7})
    assert searcher.trainer.step == 1 and searcher.buffer == []
    assert searcher.last_stats.mean_reward == pytest.approx(0.6)


@pytest.mark.parametrize(
    "result, error, status",
    [
        (None, True, "error"),
        ({"reward": math.nan}, False, "invalid"),
        ({"reward": math.inf}, False, "invalid"),
        ({"reward": -math.inf}, False, "invalid"),
        ({"accuracy": 0.9}, False, "invalid"),
        ({"reward": True}, False, "invalid"),
        ({}, False, "invalid"),
    ],
)
def test_unusable_results_never_reach_the_gradient(result, error, status):
    searcher = make(samples_per_update=1)
    searcher.suggest("bad")
    before = {k: v.clone() for k, v in searcher.policy.state_dict().items()}
    searcher.on_trial_complete("bad", result, error=error)
    assert searcher.trainer.step == 0 and searcher.buffer == []
    assert searcher.trainer.baseline is None
    assert all((before[k] == v).all() for k, v in searcher.policy.state_dict().items())
    assert searcher.history[-1]["status"] == status and searcher.num_failed == 1
    assert "bad" not in searcher.live  # the slot is released
    searcher.suggest("next")
    searcher.on_trial_complete("next", {"reward": 0.4})
    assert searcher.trainer.step == 1


def test_duplicate_and_unknown_completions_are_ignored():
    searcher = make(samples_per_update=1)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"reward": 0.3})
    searcher.on_trial_complete("a", {"reward": 0.9})
    searcher.on_trial_complete("never-suggested", {"reward": 0.9})
    assert searcher.trainer.step == 1 and len(searcher.history) == 1


def test_concurrency_is_limited_inside_the_searcher():
    searcher = make()
    assert searcher.set_max_concurrency(2) is True
    assert searcher.suggest("a") is not None and searcher.suggest("b") is not None
    assert searcher.suggest("c") is None
    searcher.on_trial_complete("a", {"reward": 0.1})
    assert searcher.suggest("c") is not None


@pytest.mark.parametrize("cls", [ControllerSearcher, RandomSearcher])
def test_seeded_determinism(cls):
    a, b, c = make(cls), make(cls), make(cls, seed=4)
    seq = lambda s: [suggested_tokens(s, f"t{i}") for i in range(4)]  # noqa: E731
    assert seq(a) == seq(b) != seq(c)


@pytest.mark.parametrize("cls", [ControllerSearcher, RandomSearcher])
def test_save_restore_reproduces_next_suggestions_and_updates(tmp_path, cls):
    searcher = make(cls)
    for i in range(3):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {"reward": 0.2})
    searcher.on_trial_complete("t1", {"reward": 0.8})
    searcher.on_trial_complete("t2", {"reward": 0.5})  # left in the buffer
    searcher.suggest("live")
    path = tmp_path / "searcher-state-x.pkl"
    searcher.save(str(path))

    restored = make(cls, seed=99)  # a different seed must not matter: state wins
    restored.restore(str(path))
    assert restored.live == searcher.live and restored.history == searcher.history
    assert (restored.metric, restored.mode, restored.seed) == ("reward", "max", 3)
    for s in (searcher, restored):
        s.on_trial_complete("live", {"reward": 0.9})
    assert [suggested_tokens(searcher, f"n{i}") for i in range(3)] == \
           [suggested_tokens(restored, f"n{i}") for i in range(3)]
    if cls is ControllerSearcher:
        assert restored.trainer.step == searcher.trainer.step == 2
        assert restored.trainer.baseline == searcher.trainer.baseline
        for k, v in searcher.policy.state_dict().items():
            assert (restored.policy.state_dict()[k] == v).all()


def test_save_is_atomic(tmp_path, monkeypatch):
    import os

    searcher = make()
    path = tmp_path / "state.pt"
    searcher.save(str(path))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    searcher.suggest("x")
    with pytest.raises(OSError):
        searcher.save(str(path))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_min_mode_negates_for_the_policy():
    searcher = ControllerSearcher(TransformerSpace(2), metric="perplexity", mode="min",
                                  config=ControllerConfig(samples_per_update=1))
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"perplexity": 50.0})
    assert searcher.last_stats.mean_reward == -50.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        make(mode="best")
    with pytest.raises(ValueError, match="samples_per_update"):
        make(samples_per_update=0)


def test_listener_sees_every_processed_completion():
    calls = []
    searcher = make(on_update=lambda s, stats, history: calls.append((stats is not None, len(history))))
    for i in range(3):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {"reward": 0.1})
    searcher.on_trial_complete("t1", None, error=True)
    searcher.on_trial_complete("t2", {"reward": 0.3})
    assert calls == [(False, 1), (False, 2), (True, 3)]


def drive(searcher, reward, n, concurrency=2, order_seed=0):
    """Tune's loop without Tune: ``concurrency`` live trials, completions in random order (so updates
    see samples drawn by an older policy); returns the suggested tokens in order."""
    rng = random.Random(order_seed)
    searcher.set_max_concurrency(concurrency)
    live, tokens = [], []
    while len(tokens) < n or live:
        while len(live) < concurrency and len(tokens) < n:
            trial_id = f"t{len(tokens)}"
            tokens.append(suggested_tokens(searcher, trial_id))
            live.append(trial_id)
        trial_id = live.pop(rng.randrange(len(live)))
        searcher.on_trial_complete(trial_id, {"reward": reward(tokens[int(trial_id[1:])])})
    return tokens


def target_reward(space, seed=0, noise=0.0):
    rng = random.Random(seed)
    target = [rng.randrange(len(d.choices)) for d in space.decisions]
    noise_rng = random.Random(seed + 1)

    def reward(tokens):
        match = sum(a == b for a, b in zip(tokens, target)) / len(target)
        return match + (noise_rng.gauss(0.0, noise) if noise else 0.0)

    return reward, target


def search_on_r_and_on_affine_r(a, b, **settings):
    """The same search (seed, completion order, noisy rewards) on r and on a + b * r; returns both searchers
    and the suggestions of each."""
    reward, _ = target_reward(ConvSpace(3), seed=1, noise=0.05)
    cache = {}

    def r(tokens):  # the same noisy value for the same trial in both runs
        key = len(cache)
        cache.setdefault(key, reward(tokens))
        return cache[key]

    plain = make(seed=5, **settings)
    first = drive(plain, r, 40)
    it = iter(list(cache.values()))
    affine = make(seed=5, **settings)
    second = drive(affine, lambda tokens: a + b * next(it), 40)
    return plain, affine, first, second


@pytest.mark.parametrize("a, b", [(0.97, 0.02), (-5.0, 30.0)])
def test_affine_rewards_give_the_same_search(a, b):
    """The same search on r and on a + b * r (b > 0): identical suggestions over 40 completions."""
    plain, affine, first, second = search_on_r_and_on_affine_r(a, b)
    assert second == first
    assert affine.trainer.step == plain.trainer.step == 20
    assert affine.trainer.spread == pytest.approx(b * plain.trainer.spread, rel=1e-9)
    for p, q in zip(plain.policy.parameters(), affine.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.mark.parametrize("a, b", [(0.97, 0.02), (-5.0, 30.0)])
def test_raw_advantages_make_the_search_depend_on_the_units(a, b):
    """The control of the test above: with raw reward differences (ENAS's rule) the two searches part."""
    _, _, first, second = search_on_r_and_on_affine_r(a, b, normalize_advantages=False)
    assert second != first


def entropy_share(searcher):
    """Mean over 256 samples of the policy's entropy along each row, as a share of the uniform choice's
    among the allowed choices along that row (choices the space forces carry no entropy)."""
    with torch.no_grad():
        tokens, _, entropies = searcher.policy.sample(256, generator=torch.Generator().manual_seed(0))
    space = searcher.space
    uniform = [sum(math.log(len(d.choices) if (mask := space.choice_mask(row[:i])) is None else sum(mask))
                   for i, d in enumerate(space.decisions)) for row in tokens.tolist()]
    return float((entropies / torch.tensor(uniform)).mean())


def test_noise_only_rewards_leave_the_policy_near_uniform():
    """Rewards that do not depend on the pattern (N(0.5, 0.05)): after 100 of them the policy keeps
    >= 90% of the uniform policy's entropy on average over 3 seeds (the benchmark's target), each >= 85%."""
    shares = []
    for seed in range(3):
        noise = random.Random(100 + seed)
        searcher = make(seed=seed)
        drive(searcher, lambda tokens, noise=noise: noise.gauss(0.5, 0.05), 100, order_seed=seed)
        shares.append(entropy_share(searcher))
    assert sum(shares) / 3 >= 0.90 and min(shares) >= 0.85, shares


def test_a_clean_signal_is_learned():
    """reward = share of a hidden target's tokens matched (ConvSpace(1), 10 tokens; chance ~0.25):
    within 200 samples the policy's own samples match clearly more than chance, on 2 seeds."""
    space = ConvSpace(1)
    for seed in range(2):
        reward, target = target_reward(space, seed=10 + seed)
        searcher = ControllerSearcher(space, seed=seed, config=ControllerConfig())
        tokens = drive(searcher, reward, 200, order_seed=seed)
        late = sum(reward(t) for t in tokens[-40:]) / 40
        assert late > 0.45, (seed, late)


def test_state_round_trip_keeps_the_settings_and_the_asynchronous_bookkeeping(tmp_path):
    config = ControllerConfig(samples_per_update=3, lr=0.02, optimizer="sgd", entropy_weight=0.05, clip_ratio=0.1,
                              hidden=16)
    searcher = ControllerSearcher(ConvSpace(2), seed=1, config=config)
    reward, _ = target_reward(ConvSpace(2))
    drive(searcher, reward, 7)  # 2 updates, one result left in the buffer
    searcher.suggest("live-a")
    searcher.suggest("live-b")
    path = tmp_path / "state.pt"
    searcher.save(str(path))
    state = torch.load(path, weights_only=True)
    assert state["config"] == config.as_dict() and set(state["behaviour"]) == {"live-a", "live-b"}

    restored = ControllerSearcher(TransformerSpace(1), seed=9)  # other space, settings and seed: the state wins
    restored.restore(str(path))
    assert restored.config == config and restored.policy.hidden == 16
    assert isinstance(restored.trainer.optimizer, torch.optim.SGD)
    assert restored.behaviour == searcher.behaviour and restored.buffer == searcher.buffer
    assert (restored.trainer.baseline, restored.trainer.spread) == (searcher.trainer.baseline, searcher.trainer.spread)
    for s in (searcher, restored):
        s.on_trial_complete("live-b", {"reward": 0.9})
        s.on_trial_complete("live-a", {"reward": 0.1})
    assert restored.trainer.step == searcher.trainer.step == 3
    for p, q in zip(searcher.policy.parameters(), restored.policy.parameters()):
        assert torch.equal(p, q)
    assert [suggested_tokens(searcher, f"n{i}") for i in range(2)] == \
           [suggested_tokens(restored, f"n{i}") for i in range(2)]


def test_config_must_be_a_controller_config():
    with pytest.raises(TypeError, match="config must be a ControllerConfig"):
        ControllerSearcher(ConvSpace(1), config={"lr": 0.1})


def test_a_state_saved_without_settings_is_refused_with_a_clear_error():
    searcher = make()
    state = searcher.get_state()
    old = {k: v for k, v in state.items() if k not in ("config", "behaviour")}
    old["samples_per_update"] = 2  # what main saved before the settings
    with pytest.raises(ValueError, match="saved by an older autodropout"):
        make().set_state(old)
    make().set_state(state)  # the current format loads


def test_the_state_holds_the_space_in_its_one_form_and_an_older_state_still_reads():
    space = TransformerSpace(2, num_embeddings=1)
    searcher = RandomSearcher(space, seed=4)
    searcher.suggest("t0")
    state = searcher.get_state()
    assert {key: state[key] for key in ("space", "space_config")} == space_to_json(space)
    old = {("space_kind" if key == "space" else key): value for key, value in state.items()}  # before the one form
    restored = RandomSearcher(ConvSpace(1))
    restored.set_state(old)
    assert restored.space == space
    assert suggested_tokens(restored, "t1") == suggested_tokens(searcher, "t1")
