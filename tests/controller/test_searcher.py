"""The Ray searcher driven directly, without a cluster."""
import math

import pytest

from autodropout.controller.searcher import ControllerSearcher, RandomSearcher
from autodropout.search_spaces import ConvSpace, TransformerSpace


def make(cls=ControllerSearcher, **kwargs):
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("mode", "max")
    if cls is ControllerSearcher:
        kwargs.setdefault("samples_per_update", 2)
    return cls(ConvSpace(3), metric="reward", **kwargs)


def test_suggestion_holds_pattern_tokens_and_seed():
    searcher = make()
    config = searcher.suggest("t1")
    assert set(config) == {"pattern", "tokens", "seed"}
    assert config["seed"] == 3
    space = ConvSpace(3)
    assert space.decode(config["tokens"]).to_json() == config["pattern"]
    assert searcher.live == {"t1": config["tokens"]}


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
    seq = lambda s: [s.suggest(f"t{i}")["tokens"] for i in range(4)]  # noqa: E731
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
    assert [searcher.suggest(f"n{i}")["tokens"] for i in range(3)] == \
           [restored.suggest(f"n{i}")["tokens"] for i in range(3)]
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
    searcher = ControllerSearcher(TransformerSpace(2), metric="perplexity", mode="min", samples_per_update=1)
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
