"""Real Ray searches on tiny configs, through the command line, in subprocesses."""
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import autodropout as ad
from autodropout.runs.experiment import load_experiment, parse_start_from
from autodropout.tasks import build_task
from autodropout.tune.start_point import start_tokens
from tests.conftest import PYTHON
from tests.helpers import autodropout
from tests.tiny import TINY_LM, TINY_VISION, write_experiment

pytestmark = pytest.mark.slow


def read_table(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv") as fh:
        return list(csv.DictReader(fh))


def sampled_tokens(table: list[dict]) -> list[list[int]]:
    return [[int(t) for t in row["tokens"].split()] for row in table]


def expected_start(experiment: Path, spec: str) -> list[int]:
    task = build_task(load_experiment(experiment).task)
    return start_tokens(parse_start_from(spec), task, task.search_space())


def test_search_end_to_end(tmp_path, cli_env):
    experiment = write_experiment(tmp_path)
    run_dir = tmp_path / "run"
    proc = autodropout("search", experiment, "--output", run_dir, "--seed", 1, "--start-from", "dropout:p=0.135",
                       env=cli_env)
    assert "search finished: 4 trials (0 failed)" in proc.stdout
    assert "tensorboard --logdir" in proc.stdout
    assert "Traceback" not in proc.stderr and "Tuner.restore" not in proc.stderr

    table = read_table(run_dir)
    assert len(table) == 4 and len({r["trial_id"] for r in table}) == 4
    indices = [int(r["index"]) for r in table]  # creation (sampling) order
    assert indices == [1, 2, 3, 4]
    # Started from the pattern nearest to dropout p=0.135 (docs/search.md, "Starting from a known point"):
    # the first trial is that pattern, the next ones are near it (a cold controller's are ~15 tokens away).
    start = expected_start(experiment, "dropout:p=0.135")
    assert "starting the trials from dropout:p=0.135" in proc.stdout
    assert json.loads((run_dir / "run.json").read_text())["start_tokens"] == start
    sampled = sampled_tokens(table)
    assert sampled[0] == start
    assert sum(sum(a != b for a, b in zip(t, start)) for t in sampled[1:]) / 3 < 8, sampled
    assert all(r["status"] == "done" and 0 <= float(r["reward"]) <= 1 for r in table)
    assert all(r["accuracy"] == r["reward"] for r in table)
    # Progress: a line when each trial starts and when it ends, numbered like the table.
    for row in table:
        head = f"[{row['index']}/4] {row['trial_id']} "
        assert f"{head}started" in proc.stdout
        assert f"{head}reward {float(row['reward']):.4f}" in proc.stdout
    assert "4 ended, 0 running" in proc.stdout and "ETA 00:00" in proc.stdout
    assert (run_dir / "search_progress.png").stat().st_size > 1000 and "progress plot:" in proc.stdout
    # Threads: the trial's CPUs (search.cpus_per_trial = 1), set and recorded by every trial.
    assert {line["threads"] for d in (run_dir / "trials").glob("trial_*") for line in result_lines(d)} == {1}
    # Checkpoints (keep_checkpoints: best, top_k 3): the 3 best trials keep their training state; the
    # other's checkpoint keeps only its final metrics.
    states = {p.parents[1].name.split("_")[2] for p in (run_dir / "trials").glob("trial_*/checkpoint_*/state.pt")}
    ranked = sorted(table, key=lambda r: -float(r["reward"]))
    assert states == {r["trial_id"] for r in ranked[:3]}
    released = next((run_dir / "trials").glob(f"trial_*_{ranked[3]['trial_id']}/checkpoint_*"))
    assert sorted(p.name for p in released.iterdir()) == ["metrics.json"]
    assert "3 trial checkpoints kept; search.keep_checkpoints: best" in proc.stdout

    patterns = ad.load_patterns(run_dir / "best_patterns.json")
    assert patterns.space.kind == "conv" and patterns.space.num_sites == 3
    rewards = [p.reward for p in patterns.patterns]
    assert rewards == sorted(rewards, reverse=True) and len(rewards) == 3
    assert rewards[0] == pytest.approx(max(float(r["reward"]) for r in table))
    best_row = next(r for r in table if r["trial_id"] == patterns.patterns[0].trial_id)
    assert patterns.space.encode(patterns.best) == [int(t) for t in best_row["tokens"].split()]

    state = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert state["trainer"]["step"] == 2  # 4 valid trials, samples_per_update = 2
    assert (run_dir / "config.yaml").exists() and (run_dir / "run.json").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard" / "controller")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"controller/mean_reward", "controller/baseline", "controller/entropy", "controller/loss",
            "trials/reward", "trials/best_reward"} <= scalars
    assert "best_pattern/masks" in events.Tags()["images"]
    assert {"choices/size", "choices/residual"} <= set(events.Tags()["histograms"])
    trial_events = list((run_dir / "trials").glob("trial_*/events.out.tfevents.*"))
    assert len(trial_events) == 4, "Ray's per-trial TensorBoard logs missing"

    exported = autodropout("export", run_dir, "--top", 2, "-o", tmp_path / "top2.json", env=cli_env)
    assert "4 trials" in exported.stdout
    assert len(ad.load_patterns(tmp_path / "top2.json").patterns) == 2


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path, cli_env):
    # An infinite learning rate makes the loss non-finite: those trials fail (after one retry) and are
    # recorded; the search still ends with the requested number of trials.
    experiment = write_experiment(tmp_path, {"task": {"kind": "vision", "dataset": "digits", "image_size": 8,
                                                       "depth": 10, "width": 1,
                                                       "train": {"epochs": 1, "lr": float("inf"), "momentum": 0.0,
                                                                 "max_batches_per_epoch": 3}},
                                              "search": {"trials": 3, "max_failures": 1}})
    run_dir = tmp_path / "run"
    proc = autodropout("search", experiment, "--output", run_dir, env=cli_env)
    table = read_table(run_dir)
    assert len(table) == 3
    assert all(r["status"] == "error" and r["reward"] == "" for r in table)
    assert "FAILED" in proc.stdout and "search finished: 3 trials (3 failed)" in proc.stdout
    assert "failed; retrying from the start" in proc.stdout  # max_failures 1, failed before any checkpoint
    assert not (run_dir / "best_patterns.json").exists()
    assert not list((run_dir / "trials").glob("trial_*/checkpoint_*/state.pt"))  # failed trials keep none
    errors = list((run_dir / "trials").glob("trial_*/error.txt"))
    assert errors and "non-finite training loss" in errors[0].read_text()


def result_lines(trial_dir: Path) -> list[dict]:
    text = (trial_dir / "result.json").read_text() if (trial_dir / "result.json").exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def lose_latest_checkpoint(trial_dir: Path) -> None:
    """Leave the trial as Ray does when the driver dies between deleting a superseded checkpoint and
    saving the experiment state: the checkpoint its last result names is gone, a newer one exists."""
    named = trial_dir / result_lines(trial_dir)[-1]["checkpoint_dir_name"]
    newer = trial_dir / f"checkpoint_{int(named.name.split('_')[1]) + 1:06d}"
    shutil.rmtree(newer, ignore_errors=True)
    shutil.copytree(named, newer)
    shutil.rmtree(named)


def three_epoch_experiment(folder: Path, search: dict) -> Path:
    """Trials of 3 epochs of ~0.4 s each, so that a kill lands while one is in the middle of training."""
    return write_experiment(folder, {
        "task": {**TINY_VISION["task"], "image_size": 16,
                 "train": {**TINY_VISION["task"]["train"], "epochs": 3, "batch_size": 16, "max_batches_per_epoch": 40}},
        "search": search})


def start_search(experiment: Path, run_dir: Path, env: dict, stderr=subprocess.STDOUT) -> subprocess.Popen:
    """``autodropout search`` in its own process group (so that a test can kill it and its Ray)."""
    return subprocess.Popen([PYTHON, "-m", "autodropout.commands.cli", "search", str(experiment),
                             "--output", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)


def test_sigkill_then_resume_loses_and_duplicates_no_trial(tmp_path, cli_env):
    experiment = three_epoch_experiment(tmp_path, {"trials": 6, "concurrency": 1, "samples_per_update": 1})
    run_dir = tmp_path / "run"
    proc = start_search(experiment, run_dir, cli_env)
    trials = run_dir / "trials"
    deadline = time.time() + 240
    try:
        # Kill once 2 trials have finished, the searcher state has been saved, and a third trial has
        # checkpointed its first epoch (then give the driver a moment to record that checkpoint).
        while time.time() < deadline:
            epochs = {d: [r["epoch"] for r in result_lines(d)] for d in trials.glob("trial_*")}
            running = [d for d, e in epochs.items() if e and max(e) < 3]
            if sum(3 in e for e in epochs.values()) >= 2 and running and list(trials.glob("searcher-state-*.pkl")):
                time.sleep(0.15)
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        else:
            pytest.fail("search did not make progress")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # The driver's own Ray processes (same session) die with it, as on a real crash of the machine.
        subprocess.run(["pkill", "-9", "-s", str(proc.pid)], capture_output=True)
    before = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    interrupted = running[0]
    lose_latest_checkpoint(interrupted)

    # export works on the interrupted run, from the trial folders alone
    autodropout("export", run_dir, "--top", 1, "-o", tmp_path / "interrupted.json", env=cli_env)
    assert sum(r["status"] == "done" for r in read_table(run_dir)) >= 2
    assert len(ad.load_patterns(tmp_path / "interrupted.json").patterns) == 1

    resumed = autodropout("search", "--resume", run_dir, env=cli_env, timeout=400)
    assert "search finished: 6 trials (0 failed)" in resumed.stdout
    assert "resuming from" in resumed.stderr  # the lost checkpoint was replaced by the newer one
    assert "6 ended, 0 running" in resumed.stdout  # progress counts on from the trials finished before the kill
    assert f"{interrupted.name.split('_')[2]} resumed from its checkpoint" in resumed.stdout
    table = read_table(run_dir)
    assert len(table) == 6 and len({r["trial_id"] for r in table}) == 6
    assert all(r["status"] == "done" for r in table), table
    # The interrupted trial went on from its checkpoint: no epoch was trained twice.
    epochs = [r["epoch"] for r in result_lines(interrupted)]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3
    after = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert after["trainer"]["step"] > before["trainer"]["step"]
    assert after["num_suggested"] >= 6 - 0 and len(after["history"]) <= 6
    assert ad.load_patterns(run_dir / "best_patterns.json").patterns


def test_language_model_search_uses_the_transformer_space(tmp_path, cli_env):
    experiment = write_experiment(tmp_path, base=TINY_LM)
    run_dir = tmp_path / "run"
    # Random search from a pattern file learned on a model twice as deep (mapped by relative depth).
    space = build_task(load_experiment(experiment).task).search_space()
    deeper = type(space).from_config({**space.config(), "num_sites": 2 * space.num_sites})
    ad.save_patterns(tmp_path / "deep.json", [deeper.decode(deeper.sample(0))], deeper)
    autodropout("search", experiment, "--output", run_dir, "--controller", "random", "--start-from",
                tmp_path / "deep.json", env=cli_env)
    table = read_table(run_dir)
    assert len(table) == 2 and all(r["status"] == "done" for r in table)
    start = expected_start(experiment, str(tmp_path / "deep.json"))
    assert sampled_tokens(table)[0] == start and sampled_tokens(table)[1] != start
    assert all(float(r["reward"]) == pytest.approx(80.0 / float(r["perplexity"])) for r in table)
    patterns = ad.load_patterns(run_dir / "best_patterns.json")
    assert patterns.space.kind == "transformer" and patterns.space.num_sites == 2
    assert patterns.source["metric"] == "perplexity"
