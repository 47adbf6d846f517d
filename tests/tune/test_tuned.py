"""The tuned baselines' searcher: where its trials go (the lattice rounds of tune/lattice.py), that
it refines around the best, that a restored one continues instead of starting over, and that it
reproduces; plus whether a Tune experiment folder can be continued (no Ray cluster needed)."""
import itertools
import math

import numpy as np
import pytest
from ray.tune.search import Searcher

from autodropout.core.errors import ConfigError
from autodropout.tune.lattice import design, refined, rounds
from autodropout.tune.tuned import LatticeSearcher, restorable

RATE = {"p": ["uniform", 0.0, 0.5]}
BLOCKS = {"p": ["uniform", 0.0, 0.3], "block_size": ["choice", [3, 5, 7]]}
TWO_RANGES = {"p": ["uniform", 0.0, 0.5], "q": ["uniform", 1.0, 3.0]}


def reward(params):
    """A smooth reward with its best at p = 0.18 (where lm_transformer_quick's is), ties broken by q."""
    return -((params["p"] - 0.18) ** 2) - 0.01 * abs(params.get("q", 2.0) - 2.0)


@pytest.mark.parametrize("n", range(1, 21))
def test_a_rate_gets_the_midpoint_grid_of_the_budget(n):
    rates = [s["p"] for s in design(RATE, n)]
    assert sorted(rates) == pytest.approx([0.5 * (i + 0.5) / n for i in range(n)], abs=1e-6)
    dense = np.linspace(0.0, 0.5, 5001)  # every rate of the domain is within half a cell of a setting
    assert np.abs(dense[:, None] - np.array(rates)[None]).min(axis=1).max() <= 0.5 / (2 * n) + 1e-6
    assert abs(rates[0] - 0.25) == pytest.approx(min(abs(p - 0.25) for p in rates), abs=1e-6)  # nearest the centre


def test_the_order_keeps_every_prefix_spread():
    rates = [s["p"] for s in design(RATE, 16)]
    # greedy farthest point: the first 3 trials already cover both ends and the middle
    assert rates[:3] == [pytest.approx(0.234375), pytest.approx(0.484375), pytest.approx(0.015625)]
    for k in range(2, 17):
        gaps = np.diff(sorted([0.0, *rates[:k], 0.5]))
        assert gaps.max() <= 2.5 * 0.5 / k, (k, rates[:k])


@pytest.mark.parametrize("n", [3, 8, 10, 16])
def test_block_sizes_are_balanced_and_each_sees_rates_across_the_range(n):
    settings = design(BLOCKS, n)
    assert sorted(s["p"] for s in settings) == pytest.approx([0.3 * (i + 0.5) / n for i in range(n)], abs=1e-6)
    counts = {b: sum(s["block_size"] == b for s in settings) for b in (3, 5, 7)}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    if n >= 8:
        for b in (3, 5, 7):
            rates = [s["p"] for s in settings if s["block_size"] == b]
            assert max(rates) - min(rates) >= 0.3 / 3, (b, rates)
    assert len({(s["p"], s["block_size"]) for s in settings}) == n


@pytest.mark.parametrize("n", [8, 10, 16])
def test_two_ranges_get_a_lattice_better_spread_than_the_diagonal(n):
    settings = design(TWO_RANGES, n)
    unit = np.array([[s["p"] / 0.5, (s["q"] - 1.0) / 2.0] for s in settings])
    for axis in range(2):  # every projection is the midpoint grid
        assert sorted(unit[:, axis]) == pytest.approx([(i + 0.5) / n for i in range(n)], abs=1e-5)
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(unit, 2))
    assert closest > 1.5 * math.sqrt(2) / n  # the diagonal (p and q rising together) has sqrt(2) / n


@pytest.mark.parametrize(("n", "expected"), [(1, (1, 0)), (3, (3, 0)), (4, (2, 2)), (8, (4, 4)), (10, (6, 4)),
                                             (16, (8, 8)), (200, (100, 100))])
def test_rounds(n, expected):
    assert rounds(RATE, n) == expected
    assert rounds({"block_size": ["choice", [3, 5]]}, n) == (n, 0)  # nothing to refine


def test_the_second_round_surrounds_the_best_and_never_repeats_it():
    first = design(RATE, 6)
    best = {"p": 0.208333}  # a first-round midpoint (cells of 1/12)
    fine = [s["p"] for s in refined(RATE, 6, 4, best)]
    assert sorted(fine) == pytest.approx([0.125 + (i + 0.5) * (1 / 6) / 4 for i in range(4)], abs=1e-6)
    assert best["p"] not in fine and not set(fine) & {s["p"] for s in first}
    edge = [s["p"] for s in refined(RATE, 6, 4, {"p": 0.041667})]  # clipped to the domain
    assert min(edge) > 0.0 and max(edge) < 0.041667 + 1 / 12
    held = refined(BLOCKS, 6, 4, {"p": 0.125, "block_size": 5})
    assert {s["block_size"] for s in held} == {5} and all(0.075 <= s["p"] <= 0.175 for s in held)


def test_malformed_domains_and_budgets_say_what_was_expected():
    with pytest.raises(ConfigError, match=r"tuned domain \['normal', 0, 1\]: expected \['uniform', low, high\] "
                                          r"or \['choice', \[values\]\]"):
        design({"p": ["normal", 0, 1]}, 4)
    with pytest.raises(ConfigError, match="tuned trials: expected at least 1, got 0"):
        rounds(RATE, 0)


def drive(searcher, trials, score=reward, stop_after=None):
    """Run ``searcher`` like Tune does with its concurrency (completions in creation order); returns
    the suggested params in order. ``stop_after``: stop after that many completions, trials live."""
    suggested, live, done, ids = [], [], 0, itertools.count()
    while len(suggested) < trials:
        trial_id = f"t{next(ids)}"
        config = searcher.suggest(trial_id)
        if config == Searcher.FINISHED:
            break
        if config is not None:
            suggested.append(config["regularizer"]["params"])
            live.append((trial_id, config["regularizer"]["params"]))
            continue
        if stop_after is not None and done == stop_after:
            return suggested
        trial_id, params = live.pop(0)
        searcher.on_trial_complete(trial_id, {"reward": score(params)})
        done += 1
    for trial_id, params in live:
        searcher.on_trial_complete(trial_id, {"reward": score(params)})
    return suggested


def test_the_searcher_runs_both_rounds_and_refines_around_the_best():
    searcher = LatticeSearcher(RATE, 10, max_concurrent=2)
    suggested = drive(searcher, 10)
    assert suggested[:6] == design(RATE, 6)
    best = max(suggested[:6], key=reward)
    assert best == {"p": 0.208333}
    assert suggested[6:] == refined(RATE, 6, 4, best)
    assert searcher.suggest("t-extra") == Searcher.FINISHED
    assert abs(max(suggested, key=reward)["p"] - 0.18) < abs(best["p"] - 0.18)  # the second round got closer


def test_the_second_round_waits_for_the_first_and_respects_concurrency():
    searcher = LatticeSearcher(RATE, 4, max_concurrent=2)
    assert searcher.suggest("a") is not None and searcher.suggest("b") is not None
    assert searcher.suggest("c") is None  # the first round (2 trials) is out; its best is not known yet
    searcher.on_trial_complete("a", {"reward": 1.0})
    assert searcher.suggest("c") is None
    searcher.on_trial_complete("b", {"reward": 0.0})
    c, d = searcher.suggest("c"), searcher.suggest("d")
    a = design(RATE, 2)[0]
    assert [c["regularizer"]["params"], d["regularizer"]["params"]] == refined(RATE, 2, 2, a)
    assert searcher.suggest("e") == Searcher.FINISHED  # all 4 are out
    wide = LatticeSearcher(RATE, 8, max_concurrent=2)
    assert wide.suggest("a") is not None and wide.suggest("b") is not None
    assert wide.suggest("c") is None  # 2 of the first round's 4 are live: the limit
    wide.on_trial_complete("a", {"reward": 1.0})
    assert wide.suggest("c")["regularizer"]["params"] == design(RATE, 4)[2]


@pytest.mark.parametrize("failure", [{"error": True}, {"result": None}, {"result": {"reward": float("nan")}},
                                     {"result": {"other": 1.0}}])
def test_a_failed_trial_is_never_the_best(failure):
    searcher = LatticeSearcher(RATE, 4, max_concurrent=2)
    first, second = (searcher.suggest(t)["regularizer"]["params"] for t in ("a", "b"))
    searcher.on_trial_complete("a", **({"result": {"reward": 9.0}, **failure}))
    searcher.on_trial_complete("b", {"reward": 0.0})
    searcher.on_trial_complete("b", {"reward": 5.0})  # a duplicate completion changes nothing
    assert searcher.best() == second


def test_a_trial_a_scheduler_stopped_is_never_the_best():
    searcher = LatticeSearcher(RATE, 4, max_concurrent=2, epochs=12)
    first, second = (searcher.suggest(t)["regularizer"]["params"] for t in ("a", "b"))
    searcher.on_trial_complete("a", {"reward": 9.0, "epoch": 9})  # stopped at ASHA's rung, a lower fidelity
    searcher.on_trial_complete("b", {"reward": 0.5, "epoch": 12})
    assert searcher.best() == second
    restored = LatticeSearcher(RATE, 4)
    restored.set_state(searcher.get_state())
    assert restored.epochs == 12 and restored.best() == second


def test_mode_min_and_no_result_at_all():
    searcher = LatticeSearcher(RATE, 2, metric="perplexity", mode="min")
    for trial_id, value in (("a", 150.0), ("b", 140.0)):
        searcher.suggest(trial_id)
        searcher.on_trial_complete(trial_id, {"perplexity": value})
    assert searcher.best() == design(RATE, 2)[1]
    assert LatticeSearcher(RATE, 4).best() == design(RATE, 2)[0]  # nothing ended: the first setting


@pytest.mark.parametrize("stop_after", [1, 5, 6, 8])
def test_a_restored_searcher_continues_where_the_saved_one_stopped(tmp_path, stop_after):
    uninterrupted = drive(LatticeSearcher(BLOCKS, 10, max_concurrent=2), 10)
    saved = LatticeSearcher(BLOCKS, 10, max_concurrent=2)
    before = drive(saved, 10, stop_after=stop_after)
    live = dict(saved.live)
    saved.save(str(tmp_path / "searcher-state.json"))
    restored = LatticeSearcher({"p": ["uniform", 0.0, 0.9]}, 3)  # what the restore overwrites
    restored.restore(str(tmp_path / "searcher-state.json"))
    assert restored.get_state() == saved.get_state() and restored.metric == "reward" and restored.mode == "max"
    for trial_id, params in live.items():  # Tune resumes the live trials; they end after the restore
        restored.on_trial_complete(trial_id, {"reward": reward(params)})
    after = drive(restored, 10 - len(before))
    assert before + after == uninterrupted  # nothing repeated, nothing skipped, same refinement


def test_the_same_inputs_give_the_same_trials():
    assert drive(LatticeSearcher(TWO_RANGES, 16, max_concurrent=3), 16) == drive(
        LatticeSearcher(TWO_RANGES, 16, max_concurrent=3), 16)
    assert design(BLOCKS, 200) == design(BLOCKS, 200)


def test_restorable_takes_relative_paths(tmp_path, monkeypatch):
    # A study resumed as `--resume studies/x` hands relative paths down; Tune reads those as URIs
    # without a scheme and raised ArrowInvalid (found on a real study's resume).
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "tuner.pkl").write_bytes(b"state")
    (tmp_path / "fresh").mkdir()
    monkeypatch.chdir(tmp_path)
    assert restorable("saved") is True
    assert restorable("fresh") is False
    assert restorable("missing") is False
