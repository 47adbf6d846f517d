"""The searchers under Ray Tune's own trial schedulers, as a plain Tune script would run them.

A synthetic function trainable reports, every epoch ``e`` of ``E``, ``reward = match * e / E`` (``match``:
the share of the suggestion's tokens equal to a hidden target), with a checkpoint so that a trial that
HyperBand pauses resumes where it stopped. Ray tells a searcher neither that a scheduler stopped a trial
early nor at which epoch (docs/architecture.md, "What the Ray side relies on"); these tests check
that the searcher records such trials as "stopped", never as failures, and learns from full-length
trials only.
"""
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import pytest
import torch

from autodropout.controller import ControllerConfig
from autodropout.controller.searcher import ControllerSearcher, RandomSearcher
from autodropout.search_spaces import TransformerSpace, pattern_from_json

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # Ray searches; the module shares one local Ray instance
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, HyperBandScheduler  # noqa: E402

#: How much more the last third of a search's suggestions match the target than the first third, at
#: least (seed 0; the policy moves from a few dozen full-length rewards, see CONFIG).
MARGIN = 0.05
EPOCHS = 9  # HyperBand's rungs with its default reduction factor 3: epochs 1, 3 and 9
SPACE = TransformerSpace(1)  # 11 decisions, mostly binary: learning shows within tens of trials
# Fast settings, so that a few dozen full-length rewards move the policy.
CONFIG = ControllerConfig(samples_per_update=2, lr=0.03, entropy_weight=0.0)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def hidden_target(seed: int) -> list[int]:
    return SPACE.sample(random.Random(1000 + seed))


def match(tokens, target) -> float:
    return sum(a == b for a, b in zip(tokens, target)) / len(target)


def synthetic(target: list[int]):
    def trainable(config):
        start = 1
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                start = json.loads((Path(folder) / "epoch.json").read_text())["epoch"] + 1
        value = match(SPACE.encode(pattern_from_json(SPACE, config["pattern"])), target)
        for epoch in range(start, EPOCHS + 1):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "epoch.json").write_text(json.dumps({"epoch": epoch}))
                tune.report({"epoch": epoch, "reward": value * epoch / EPOCHS},
                            checkpoint=tune.Checkpoint.from_directory(folder))

    return trainable


class CountedSearcher(ControllerSearcher):
    """Counts the rewards that reach the learner."""

    def _complete(self, trial_id, tokens, reward):
        if reward is not None:
            self.learned = getattr(self, "learned", 0) + 1
        return super()._complete(trial_id, tokens, reward)


class StallStopper(tune.Stopper):
    """Ends the run once no trial has reported for ``seconds`` (the synthetic trials report every few
    milliseconds once running). Ray's HyperBand can leave the trials of its last bracket paused for good when that
    bracket never fills (which trials land in which bracket depends on the timing of their results), and
    the run would then wait out its time budget; ``stalled`` says that this happened."""

    def __init__(self, seconds: float = 30.0):
        self.seconds, self.last, self.stalled = seconds, None, []

    def __call__(self, trial_id, result):
        self.last = time.monotonic()
        return False

    def stop_all(self):  # counted from the first result: starting the trials' workers may take a while
        if self.last is not None and time.monotonic() - self.last > self.seconds and not self.stalled:
            self.stalled.append(True)  # a list: Tune may hold a copy of this object, not this one
        return bool(self.stalled)


def search(tmp_path, scheduler, trials: int, seed: int, epochs: int | None = EPOCHS, concurrent: int = 2):
    """Run ``trials`` trials, ``concurrent`` at a time on 2 CPUs; returns the searcher (the Tuner's copy,
    restored from the state Tune saved last), the target and whether the run stalled (StallStopper)."""
    target = hidden_target(seed)
    stopper = StallStopper()
    searcher = CountedSearcher(SPACE, metric="reward", mode="max", seed=seed, config=CONFIG, epochs=epochs)
    tuner = tune.Tuner(
        tune.with_resources(synthetic(target), {"cpu": 2 / concurrent}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=trials,
                                    max_concurrent_trials=concurrent, metric="reward", mode="max", reuse_actors=True,
                                    # a stalled run fails the test (too few trials) instead of hanging it
                                    time_budget_s=300),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="run", verbose=0, stop=stopper,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0
    # Tune runs a copy of the searcher; its state as the run ended is in the experiment folder.
    state = sorted((tmp_path / "run").glob("searcher-state-*.pkl"))[-1]
    ran = CountedSearcher(SPACE, config=CONFIG)
    ran.restore(str(state))
    ran.learned = sum(h["status"] == "ok" for h in ran.history)
    return ran, target, bool(stopper.stalled)


def check_records(searcher, trials: int, stalled: bool = False):
    """Every trial ended, none failed; stopped ones below the schedule with their epoch and value. A run
    that stalled on HyperBand's unfilled last bracket may have saved its searcher state while those
    trials were still paused: they are then live, paused and below the schedule, never failed."""
    history = searcher.history
    left = set(searcher.live) if stalled else set()
    assert len(history) + len(left) == trials and set(searcher.live) == left and searcher.paused == left
    assert set(searcher.intermediate) <= left
    assert searcher.num_failed == 0
    assert {h["status"] for h in history} <= {"ok", "stopped"}
    for h in history:
        if h["status"] == "ok":
            assert h["epoch"] == EPOCHS and h["value"] is not None
        else:
            assert h["epoch"] is not None and 1 <= h["epoch"] < EPOCHS and h["value"] is not None
    ok = [h for h in history if h["status"] == "ok"]
    # Only full-length rewards reached REINFORCE: one update per samples_per_update of them.
    assert searcher.trainer.step == len(ok) // CONFIG.samples_per_update
    return ok, [h for h in history if h["status"] == "stopped"]


def thirds(values):
    n = len(values) // 3
    return sum(values[:n]) / n, sum(values[-n:]) / n


def test_asha_stops_are_recorded_as_stopped_and_only_full_rewards_are_learned(tmp_path):
    trials = 48
    searcher, target, stalled = search(tmp_path, ASHAScheduler(time_attr="epoch", grace_period=1,
                                                               reduction_factor=2, max_t=EPOCHS), trials, seed=0)
    assert not stalled  # ASHA never pauses
    ok, stopped = check_records(searcher, trials)
    assert stopped and ok
    # Learning: the policy's own samples (every suggestion, in order) match the target more at the end.
    first, last = thirds([match(h["tokens"], target) for h in searcher.history])
    assert last - first > MARGIN, (first, last)


@pytest.mark.parametrize("make_scheduler", [HyperBandScheduler, HyperBandForBOHB], ids=["hyperband", "bohb"])
def test_hyperband_paused_and_stopped_trials_are_recorded_as_stopped(tmp_path, make_scheduler):
    # HyperBandForBOHB also calls on_pause / on_unpause, which a searcher without them crashes on.
    # 9 at a time, so that HyperBand's first bracket (9 trials at max_t=9) fills and halves: with fewer
    # live trials than a bracket holds, successive halving keeps them all and nothing is stopped.
    trials = 34  # two HyperBand bands of 17 trials at max_t=9
    searcher, target, stalled = search(tmp_path, make_scheduler(time_attr="epoch", max_t=EPOCHS), trials, seed=0,
                                       concurrent=9)
    ok, stopped = check_records(searcher, trials, stalled)
    assert stopped and ok
    first, last = thirds([match(h["tokens"], target) for h in searcher.history])
    assert last - first > MARGIN, (first, last)


# -- the rules, without Ray -----------------------------------------------------------------------


def fed(searcher, trial_id, *results):
    searcher.suggest(trial_id)
    for epoch, value in results:
        searcher.on_trial_result(trial_id, {"epoch": epoch, "reward": value, "training_iteration": 1})
    return searcher


@pytest.mark.parametrize("cls", [ControllerSearcher, RandomSearcher])
def test_completion_rules_and_state_round_trip(cls):
    options = {"config": ControllerConfig(samples_per_update=1)} if cls is ControllerSearcher else {}
    s = cls(SPACE, seed=1, epochs=4, **options)
    fed(s, "paused-loser", (1, 0.2), (2, 0.3))
    s.on_pause("paused-loser")
    fed(s, "asha-stopped", (1, 0.1))
    fed(s, "full", (1, 0.4), (4, 0.9))
    fed(s, "paused-winner", (4, 0.8))
    s.on_pause("paused-winner")
    fed(s, "never-reported")
    fed(s, "errored", (3, 0.5))
    fed(s, "skipped", (1, math.nan), (True, 0.5))  # results lacking a usable epoch or value are not kept
    fed(s, "live", (2, 0.6))
    s.on_pause("live")
    s.on_unpause("live")
    s.on_pause("live")
    assert "skipped" not in s.intermediate

    restored = cls(TransformerSpace(2), seed=9, **options)  # the state wins
    restored.set_state(s.get_state())
    assert (restored.epochs, restored.paused, restored.intermediate) == (4, s.paused, s.intermediate)
    assert restored.paused == {"paused-loser", "paused-winner", "live"}

    for x in (s, restored):
        x.on_trial_complete("paused-loser")  # HyperBand stops a paused trial: result=None
        x.on_trial_complete("asha-stopped", {"epoch": 1, "reward": 0.1})
        x.on_trial_complete("full", {"epoch": 4, "reward": 0.9})
        x.on_trial_complete("paused-winner")  # paused at the full schedule until its bracket ended
        x.on_trial_complete("never-reported")
        x.on_trial_complete("errored", None, error=True)
        x.on_trial_complete("skipped", {"reward": 0.5})  # a result that does not say its epoch: final
        rows = [(h["trial_id"], h["status"], h["epoch"], h["value"]) for h in x.history]
        assert rows == [("paused-loser", "stopped", 2, 0.3), ("asha-stopped", "stopped", 1, 0.1),
                        ("full", "ok", 4, 0.9), ("paused-winner", "ok", 4, 0.8),
                        ("never-reported", "stopped", None, None), ("errored", "error", 3, None),
                        ("skipped", "ok", None, 0.5)]
        assert x.num_failed == 1 and x.paused == {"live"} and list(x.intermediate) == ["live"]
        if cls is ControllerSearcher:
            assert x.trainer.step == 3  # full, paused-winner, skipped
    assert restored.history == s.history


def test_paused_trials_hold_no_concurrency_slot():
    s = RandomSearcher(SPACE, seed=0, max_concurrent=2, epochs=3)
    s.suggest("a"), s.suggest("b")
    assert s.suggest("c") is None
    s.on_pause("a")
    assert s.suggest("c") is not None and s.suggest("d") is None
    s.on_unpause("a")
    s.on_trial_complete("c", {"epoch": 3, "reward": 0.5})
    assert s.suggest("d") is None  # a, b live and running


def test_without_a_schedule_a_result_is_final_and_a_stop_without_one_is_not_a_failure():
    s = ControllerSearcher(SPACE, config=ControllerConfig(samples_per_update=1))
    fed(s, "a", (1, 0.2))
    fed(s, "b", (1, 0.3))
    s.on_trial_complete("a", {"epoch": 1, "reward": 0.2})
    s.on_trial_complete("b")
    assert [(h["status"], h["epoch"], h["value"]) for h in s.history] == [("ok", 1, 0.2), ("stopped", 1, 0.3)]
    assert s.num_failed == 0 and s.trainer.step == 1


def test_a_state_saved_before_the_scheduler_support_loads():
    s = ControllerSearcher(SPACE, seed=2, epochs=5)
    s.suggest("a")
    s.suggest("b")
    s.on_trial_complete("a", {"reward": 0.5})
    state = s.get_state()
    old = {k: v for k, v in state.items() if k not in ("epochs", "intermediate", "paused")}
    old["history"] = [{k: v for k, v in h.items() if k != "epoch"} for h in state["history"]]
    restored = ControllerSearcher(SPACE, epochs=7)
    restored.set_state(old)
    assert (restored.epochs, restored.intermediate, restored.paused) == (None, {}, set())
    assert restored.history == [{**old["history"][0], "epoch": None}]
    restored.on_trial_complete("b", {"epoch": 1, "reward": 0.4})
    assert restored.history[-1]["status"] == "ok"


def test_a_bad_schedule_is_refused():
    for bad in (0, -1, 2.5, True, "9"):
        with pytest.raises(ValueError, match="epochs must be a positive int"):
            RandomSearcher(SPACE, epochs=bad)


def test_saved_state_loads_with_weights_only(tmp_path):
    s = fed(ControllerSearcher(SPACE, epochs=3), "a", (1, 0.5))
    s.on_pause("a")
    path = tmp_path / "state.pt"
    s.save(str(path))
    state = torch.load(path, weights_only=True)
    assert state["intermediate"] == {"a": [[1, 0.5]]} and state["paused"] == ["a"] and state["epochs"] == 3
