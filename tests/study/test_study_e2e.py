"""`autodropout study` for real, on tiny configs, through the command line: 2 search arms x 2 trials x
2 search seeds, dropout tuned at the same budget, 2 evaluation seeds; then the report rebuilt from a
copied folder, publishing, and kill -9 / Ctrl-C + --resume."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import autodropout as ad
from autodropout.runs import RunDir
from autodropout.study.baselines import tuning_domain
from autodropout.tasks import build_task
from autodropout.tasks.mapped_pattern import pattern_onto_task
from autodropout.tune.lattice import TUNER, design
from tests.conftest import PYTHON
from tests.helpers import autodropout
from tests.tiny import TINY_VISION, write_experiment

pytestmark = pytest.mark.slow

TINY_STUDY = ["--budget", 2, "--search-seeds", 2, "--eval-seeds", 2, "--baselines", "none,dropout"]
COLD = ["--arms", "lstm,random"]
LABELS = {"lstm-s0", "lstm-s1", "random-s0", "random-s1", "none", "dropout"}
WARM_LABELS = {"lstm-warm-s0", "lstm-warm-s1"}


def epochs(trial: Path) -> list[int]:
    path = trial / "result.json"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["epoch"] for line in lines if line.endswith("}")]


def check_complete(study: Path, budget: int = 2, labels: set[str] = LABELS) -> dict:
    """Every unit finished once: searches and tuning with exactly ``budget`` trials, each trial's epochs
    reported once and in order, and one evaluation run per (method, seed) of ``labels``."""
    searches = [f"arms/{label}" for label in sorted(labels) if label[-3:-1] == "-s"]
    for unit in [*searches, "tuned/main/dropout"]:
        trials = sorted((study / unit / "trials").glob("trial_*"))
        assert len(trials) == budget, (unit, trials)
        for trial in trials:
            assert epochs(trial) == [1, 2], (trial, epochs(trial))
    evaluation = json.loads((study / "results" / "eval" / "main.json").read_text())
    cells = [(c["label"], c["seed"]) for c in evaluation["cells"]]
    assert sorted(cells) == sorted((label, seed) for label in labels for seed in (1000, 1001))
    assert all(c["error"] is None and 0 <= c["test"] <= 1 for c in evaluation["cells"])
    assert len(list((study / "eval" / "main" / "grid").glob("trial_*"))) == len(cells)
    for trial in (study / "eval" / "main" / "grid").glob("trial_*"):
        assert epochs(trial) == [1, 2], trial
    return evaluation


def test_study_end_to_end_report_from_a_copy_and_publish(tmp_path, cli_env):
    experiment = write_experiment(tmp_path)
    study = tmp_path / "study"
    # Also scores a shipped pattern learned on another task (digits WRN-16-4 -> the tiny WRN), and
    # transfers its own patterns to a wider WRN whose baseline is tuned with 1 trial.
    wider = write_experiment(tmp_path / "", {"name": "tiny_wider", "task": {**TINY_VISION["task"], "width": 2}})
    # With a warm-started LSTM arm, which starts from the tuned dropout.
    proc = autodropout("study", experiment, *TINY_STUDY, "--arms", "lstm,random,lstm-warm", "--transfer-from",
                       "digits-wrn-lstm", "--transfer-to", wider, "--transfer-budget", 1, "--output", study,
                       env=cli_env)
    assert "10 units, 43 trials" in proc.stdout and "[  32/43] eval/main finished" in proc.stdout
    assert "[  43/43] eval/tiny_wider finished" in proc.stdout
    assert "ETA" in proc.stdout and proc.stdout.count("search/lstm-s0 trial ") == 2
    assert proc.stdout.index("tune/main/dropout finished") < proc.stdout.index("search/lstm-warm-s0 finished")
    labels = LABELS | WARM_LABELS | {"digits-wrn-lstm"}
    evaluation = check_complete(study, labels=labels)
    assert {m["label"] for m in evaluation["methods"]} == labels
    imported = next(m for m in evaluation["methods"] if m["label"] == "digits-wrn-lstm")
    shipped = ad.load_patterns("digits-wrn-lstm")  # mapped onto the tiny model's sites by relative depth
    task = build_task(RunDir.open(study / "arms" / "lstm-s0").experiment.task)
    assert imported["pattern"] == pattern_onto_task(task, shipped.best, shipped.space)[0].to_json()
    assert len(imported["pattern"]) == task.num_sites
    for arm in ("lstm", "random"):
        run = RunDir.open(study / "arms" / f"{arm}-s1")
        assert run.experiment.search.controller == arm and run.seed == 1 and run.experiment.search.trials == 2
    tuned = json.loads((study / "results" / "tune" / "main" / "dropout.json").read_text())
    rates = [t["params"]["p"] for t in tuned["trials"]]
    assert rates == [s["p"] for s in design(tuning_domain("dropout", "vision"), 2)]  # budget 2: one lattice round
    assert tuned["domain"] == tuning_domain("dropout", "vision") and tuned["tuner"] == TUNER
    assert tuned["best"]["config"]["regularizer"]["params"]["p"] in rates
    dropout = next(m for m in evaluation["methods"] if m["label"] == "dropout")
    assert dropout["params"] == tuned["best"]["config"]["regularizer"]["params"]
    # The warm arm started at the tuned dropout's best rate: its first trial is that point's pattern.
    for k in (0, 1):
        warm = json.loads((study / "results" / "search" / f"lstm-warm-s{k}.json").read_text())
        assert warm["start"] == {"spec": "dropout:p="
                                         f"{json.dumps(tuned['best']['config']['regularizer']['params']['p'])}",
                                 "baseline": "dropout", "reward": tuned["best"]["reward"],
                                 "tunings": ["tune/main/dropout"]}
        run = RunDir.open(study / "arms" / f"lstm-warm-s{k}")
        assert run.experiment.search.controller == "lstm" and run.experiment.search.start_from == warm["start"]["spec"]
        first = min(warm["trials"], key=lambda t: t["index"])
        assert tuple(first["tokens"]) == run.start_tokens
    assert not RunDir.open(study / "arms" / "lstm-s0").experiment.search.start_from
    assert len(list((study / "tuned" / "tiny_wider" / "dropout" / "trials").glob("trial_*"))) == 1
    transferred = json.loads((study / "results" / "eval" / "tiny_wider.json").read_text())
    assert sorted((c["label"], c["seed"]) for c in transferred["cells"] if c["error"] is None) == sorted(
        (label, seed) for label in ("lstm", "random", "lstm-warm", "none", "dropout") for seed in (1000, 1001))
    report = (study / "report.md").read_text()
    assert "| lstm | random |" in report and "Best tuned baseline (by mean validation accuracy): **dropout**" in report
    assert "| lstm-warm | dropout (best tuned) |" in report and "- warm start: `--start-from dropout:p=" in report
    assert "units finished: 10 of 10" in report and "## Transfer to `tiny_wider`: test accuracy" in report
    assert "- transfer target `tiny_wider` (baselines: none, dropout; 1 trial per tuned baseline)" in report
    provenance = ad.load_patterns(study / "patterns" / "lstm.json").source["study"]
    assert [(t["target"], t["tuning_budget"]) for t in provenance["transfer"]] == [("tiny_wider", 1)]
    assert all((study / name).stat().st_size for name in ("search_curves.png", "test_metrics.png", "best_pattern.png"))
    assert ad.load_patterns(study / "patterns" / "lstm.json").source["study"]["eval_seeds"] == [1000, 1001]

    # The report from a copy, with the original folder gone.
    copy = tmp_path / "copied" / "study"
    shutil.copytree(study, copy)
    moved = study.rename(tmp_path / "moved")
    for name in ("report.md", "report.json", "patterns/lstm.json"):
        (copy / name).unlink()
    rebuilt = autodropout("study", "--report", copy, env=cli_env)
    assert "rebuilt" in rebuilt.stdout
    for name in ("report.md", "report.json", "patterns/lstm.json", "patterns/random.json"):
        assert (copy / name).read_bytes() == (moved / name).read_bytes(), name

    # Publish its best pattern, then use it by name.
    env = {**cli_env, "AUTODROPOUT_PATTERNS": str(tmp_path / "shipped")}
    autodropout("study", "--publish", copy, "tiny-lstm", env=env)
    listed = autodropout("list", "patterns", env=env).stdout
    assert "tiny-lstm" in listed and "tiny_vision" in listed
    assert "rank 1 of tiny-lstm" in autodropout("show", "tiny-lstm", env=env).stdout
    transfer = autodropout("transfer", "tiny-lstm", "--to", experiment, "--baselines", "none", "--seeds", 1,
                           "--sequential", "--output", tmp_path / "transfer", env=env)
    assert "| pattern |" in transfer.stdout


def start(args: list, env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "autodropout.commands.cli", "study", *map(str, args)], env=env, cwd=cwd,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(proc: subprocess.Popen, ready, log: Path, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            time.sleep(0.1)
            return
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    kill_9(proc)
    pytest.fail("the study did not get there:\n" + log.read_text())


def kill_9(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The driver's own Ray processes (same session) die with it, as on a crash of the machine.
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], capture_output=True)


def trials_with(folder: Path, done: list[int]) -> int:
    return sum(epochs(t) == done for t in folder.glob("trial_*"))


def test_a_budget_curve_study_evaluates_each_best_so_far_and_concrete_dropout_costs_one_trial(tmp_path, cli_env):
    study = tmp_path / "study"
    autodropout("study", write_experiment(tmp_path), "--budgets", "1,2", "--search-seeds", 2, "--eval-seeds", 2,
                "--baselines", "none,dropout,concrete_dropout", *COLD, "--output", study, env=cli_env)
    assert len(list((study / "tuned" / "main" / "concrete_dropout" / "trials").glob("trial_*"))) == 1
    evaluation = json.loads((study / "results" / "eval" / "main.json").read_text())
    extra = [m for m in evaluation["methods"] if "budget" in m]
    assert {m["label"] for m in evaluation["methods"]} - {m["label"] for m in extra} == LABELS | {"concrete_dropout"}
    for m in extra:  # each the best of its unit's first trial, where that is not its best of two
        unit = f"search/{m['label'][:-2]}" if m["search_seed"] is not None else f"tune/main/{m['arm']}"
        result = json.loads((study / "results" / f"{unit}.json").read_text())
        assert m["label"].endswith("@1") and m["budget"] == 1
        assert m["source"] == result["best_at"]["1"]["trial_id"] != result["best"]["trial_id"]
    assert sorted((c["label"], c["seed"]) for c in evaluation["cells"] if c["error"] is None) == sorted(
        (m["label"], seed) for m in evaluation["methods"] for seed in (1000, 1001))
    report = (study / "report.md").read_text()
    assert "### Budget curve: test accuracy" in report and (study / "budget_curves.png").stat().st_size
    curves = json.loads((study / "report.json").read_text())["budget_curves"]
    assert [(c["arm"], [p["budget"] for p in c["points"]]) for c in curves] == [
        ("lstm", [1, 2]), ("random", [1, 2]), ("none", [0]), ("dropout", [1, 2]), ("concrete_dropout", [1])]


def test_kill_9_and_ctrl_c_then_resume_lose_and_duplicate_nothing(tmp_path, cli_env):
    # One trial at a time, 2 epochs of ~1 s, so that the driver stops while a trial is between epochs:
    # kill -9 in the tuned baseline (after its first trial), Ctrl-C in the final evaluation.
    experiment = write_experiment(tmp_path, {"task": {**TINY_VISION["task"], "train": {
        **TINY_VISION["task"]["train"], "batch_size": 16, "max_batches_per_epoch": 40}}})
    study = tmp_path / "study"
    tuned, grid = study / "tuned" / "main" / "dropout" / "trials", study / "eval" / "main" / "grid"
    log = tmp_path / "first.log"
    # One search seed: what is interrupted and resumed here is the tuning and the evaluation.
    one_seed = [*TINY_STUDY[:2], "--search-seeds", 1, *TINY_STUDY[4:]]
    proc = start([experiment, *one_seed, *COLD, "--concurrency", 1, "--output", study], cli_env, log)
    wait_for(proc, lambda: trials_with(tuned, [1, 2]) == 1 and trials_with(tuned, [1]) == 1, log)
    kill_9(proc)
    searches = {p.name: p.read_bytes() for p in (study / "results" / "search").glob("*.json")}
    assert len(searches) == 2 and not (study / "results" / "tune").exists()

    log = tmp_path / "second.log"
    proc = start(["--resume", study.name], cli_env, log, cwd=tmp_path)  # relative, as typed: Tune needs it absolute
    try:
        wait_for(proc, lambda: trials_with(grid, [1, 2]) >= 2 and trials_with(grid, [1]) >= 1, log)
        proc.send_signal(signal.SIGINT)  # Ray Tune saves its state and returns: the unit must not count as done
        assert proc.wait(timeout=120) == 130
    finally:
        kill_9(proc)
    text = log.read_text()
    assert "tune/main/dropout: 1 of 2 trials already done" in text and "search/" not in text.split("\n", 1)[1]
    assert f"continue with: autodropout study --resume {study.name}" in text
    assert not (study / "results" / "eval").exists()

    resumed = autodropout("study", "--resume", study, env=cli_env)
    assert "eval/main:" in resumed.stdout and "trials already done" in resumed.stdout
    assert "[  14/14] eval/main finished" in resumed.stdout  # 2 searches x 2 + 2 tuning + 4 methods x 2 seeds
    check_complete(study, labels={"lstm-s0", "random-s0", "none", "dropout"})
    assert {p.name: p.read_bytes() for p in (study / "results" / "search").glob("*.json")} == searches
    assert "units finished: 4 of 4" in (study / "report.md").read_text()
    walls = json.loads((study / "walls.json").read_text())
    assert set(walls) == {"search/lstm-s0", "search/random-s0", "tune/main/dropout", "eval/main"}
    assert all(v > 0 for v in walls.values())
