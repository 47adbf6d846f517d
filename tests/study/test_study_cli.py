"""Bad input to `autodropout study`: one line, exit status 2, nothing written; and what a plan holds."""
import dataclasses
import json
import shutil

import pytest

import autodropout as ad
from autodropout.commands.cli import main
from autodropout.patterns import resolve
from autodropout.study import StudyDir, StudyError, make_plan
from autodropout.study.baselines import DOMAINS, default_baselines
from tests.tiny import TINY_LM, write_experiment


def run(capsys, *args):
    code = main(["study", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args, message", [
    (["--baselines", "none,dropblok"], "baseline 'dropblok' is not usable on a vision task; choose among: none, "),
    (["--baselines", "none,dropconnect"], "baseline 'dropconnect' is not usable on a vision task"),
    (["--baselines", "dropout,dropout"], "baseline 'dropout' is listed twice"),
    (["--budget", "0"], "--budget: expected at least 1 (trials per search arm and per tuned baseline), got 0"),
    (["--search-seeds", "0"], "--search-seeds: expected at least 1"),
    (["--eval-seeds", "1"], "--eval-seeds: expected at least 2"),
    (["--concurrency", "0"], "--concurrency: expected at least 1"),
    (["--transfer-to", "LM"], "a conv pattern (from a vision task) cannot go to a language_model task"),
    (["--transfer-to", "no_such_preset"], "no_such_preset: neither an experiment file nor a preset"),
    (["--transfer-from", "lm-transformer-lstm"],
     "--transfer-from lm-transformer-lstm: a transformer pattern cannot go to a vision task, whose sites take conv"),
    (["--transfer-from", "no-such-pattern"], "--transfer-from no-such-pattern: no such pattern file, and no shipped "
                                             "pattern of that name; shipped patterns: digits-wrn-lstm, "),
    (["--transfer-from", "DROPBLOCK"], "its label 'DropBlock' is already taken by an arm, a baseline, a regularizer"),
    (["--transfer-from", "digits-wrn-lstm", "--transfer-from", "digits-wrn-lstm"],
     "its label 'digits-wrn-lstm' is already taken by an arm, a baseline, a regularizer or another --transfer-from"),
    (["--transfer-from", "LSTM_S1"], "its label 'lstm-s1' is already taken"),
    (["--transfer-from", "BROKEN"], "autodropout: error: --transfer-from "),
    (["--transfer-budget", "3"], "--transfer-budget: only with --transfer-to"),
    (["--transfer-to", "SELF", "--transfer-budget", "0"],
     "--transfer-budget: expected at least 1 (trials per tuned baseline on a transfer target), got 0"),
])
def test_bad_requests_write_nothing(tmp_path, capsys, args, message):
    experiment = write_experiment(tmp_path)
    lm = write_experiment(tmp_path, base=TINY_LM)
    files = {"DROPBLOCK": tmp_path / "DropBlock.json", "LSTM_S1": tmp_path / "lstm-s1.json",
             "BROKEN": tmp_path / "broken.json"}
    anonymous = json.loads(resolve("digits-wrn-lstm").read_text())
    del anonymous["source"]["experiment"]  # labelled by its file name alone
    for key in ("DROPBLOCK", "LSTM_S1"):
        files[key].write_text(json.dumps(anonymous))
    files["BROKEN"].write_text('{"format": "autodropout.patterns"')
    files["LM"], files["SELF"] = lm, experiment
    args = [str(files.get(a, a)) for a in args]
    code, out, err = run(capsys, experiment, *args, "--output", tmp_path / "study")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("autodropout: error: ") and message in err
    assert not (tmp_path / "study").exists()


def test_existing_output_is_refused(tmp_path, capsys):
    experiment = write_experiment(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, experiment, "--output", tmp_path / "study")
    assert code == 2 and "output exists and is not an empty folder" in err
    assert [p.name for p in (tmp_path / "study").iterdir()] == ["notes.txt"]


def test_report_resume_publish_need_a_study_folder(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for args in (["--report", tmp_path / "run"], ["--resume", tmp_path / "run"], ["--publish", tmp_path / "run", "x"]):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "" and err == (f"autodropout: error: {tmp_path / 'run'}: "
                                                   "not a study folder (no study.json)\n")
    assert list((tmp_path / "run").iterdir()) == []


def test_resume_takes_no_new_options(tmp_path, capsys):
    code, _, err = run(capsys, "--resume", tmp_path, "--budget", "3")
    assert code == 2 and "--resume works on an existing study folder as planned" in err


def test_damaged_study_json_is_one_line(tmp_path, capsys):
    (tmp_path / "study.json").write_text('{"format": "autodropout.study", "version": 1')
    code, _, err = run(capsys, "--report", tmp_path)
    assert code == 2 and "damaged study folder" in err and err.count("\n") == 1


def test_plan_defaults_and_units(tmp_path):
    experiment = write_experiment(tmp_path)
    plan = make_plan(experiment, search_seeds=2, eval_seeds=3, transfer_to=[write_experiment(tmp_path / "", {
        "name": "bigger", "task": {"kind": "vision", "dataset": "digits", "image_size": 8, "depth": 16, "width": 2,
                                   "train": {"epochs": 1}}})])
    assert plan.budget == 4 and plan.search_seeds == (0, 1) and plan.eval_seeds == (1000, 1001, 1002)
    assert plan.main.baselines == tuple(default_baselines("vision"))
    assert set(plan.main.baselines) - {"none"} <= set(DOMAINS)
    assert plan.main.baselines == ("none", "dropout", "spatial_dropout", "dropblock", "droppath", "targetdrop",
                                   "ydrop", "sparseout", "concrete_dropout")
    assert plan.main.experiment.search.storage_path is None
    # Default arms: cold and warm-started (dropout, a mask, is tuned); the warm searches run after the
    # searched task's tunings, which they start from, and before its evaluation.
    assert plan.arms == ("lstm", "random", "lstm-warm", "random-warm")
    ids = [u.id for u in plan.units()]
    tunings = [f"tune/main/{b}" for b in plan.main.baselines if b != "none"]
    assert ids[:4 + 8 + 5] == ["search/lstm-s0", "search/lstm-s1", "search/random-s0", "search/random-s1", *tunings,
                               "search/lstm-warm-s0", "search/lstm-warm-s1", "search/random-warm-s0",
                               "search/random-warm-s1", "eval/main"]
    assert ids[-1] == "eval/bigger" and "tune/bigger/dropblock" in ids
    assert plan.unit("eval", "main").trials == (8 + 9) * 3 and plan.unit("eval", "bigger").trials == (4 + 9) * 3
    # Concrete Dropout has nothing to tune: one trial, whatever the budget.
    assert plan.unit("tune", "main", "concrete_dropout").trials == 1
    study = StudyDir.create(tmp_path / "study", plan)
    assert StudyDir.open(study.path).plan.to_json() == study.plan.to_json()
    # A transfer target's baselines tuned with their own, smaller budget.
    smaller = make_plan(experiment, search_seeds=2, eval_seeds=3, transfer_to=[tmp_path / "bigger.yaml"],
                        transfer_budget=2)
    assert [u.trials for u in smaller.units() if u.kind == "tune"] == [4] * 7 + [1] + [2] * 7 + [1]
    assert smaller.unit("search", "main", "lstm-s0").trials == 4
    again = StudyDir.open(StudyDir.create(tmp_path / "smaller", smaller).path).plan
    assert again.transfer_budget == 2 and again.units() == smaller.units()


def test_transfer_from_is_scored_on_the_searched_task_only(tmp_path):
    experiment = write_experiment(tmp_path)
    mine = tmp_path / "from elsewhere.json"
    shutil.copyfile(resolve("digits-wrn-lstm"), mine)
    plan = make_plan(experiment, search_seeds=1, eval_seeds=2, baselines=["none", "dropout"],
                     transfer_from=["digits-wrn-lstm", mine], arms=["random", "lstm"],
                     transfer_to=[write_experiment(tmp_path / "", {
                         "name": "other", "task": {"kind": "vision", "dataset": "digits", "image_size": 8}})])
    # Labels: a shipped name; a file's experiment (from its provenance) and name.
    assert [(i.label, i.source) for i in plan.imports] == [("digits-wrn-lstm", "digits-wrn-lstm"),
                                                          ("digits_wrn_quick-from_elsewhere", str(mine))]
    assert plan.eval_labels(plan.main) == ["lstm-s0", "random-s0", "digits-wrn-lstm",
                                           "digits_wrn_quick-from_elsewhere", "none", "dropout"]
    assert plan.eval_labels(plan.target("other")) == ["lstm", "random", "none", "dropout"]
    assert plan.unit("eval", "main").trials == 6 * 2
    study = StudyDir.create(tmp_path / "study", plan)
    mine.unlink()  # the study folder keeps its own copy
    again = StudyDir.open(study.path)
    assert again.plan == study.plan and again.plan.to_json()["imports"][1] == {
        "label": "digits_wrn_quick-from_elsewhere", "source": str(mine),
        "file": "imported/digits_wrn_quick-from_elsewhere.json"}
    copy = again.read_import(again.plan.imports[1])
    assert copy.best == ad.load_patterns("digits-wrn-lstm").best
    # A damaged copy is found when the folder is opened (--resume, --report), not at the final evaluation.
    saved = study.import_file(again.plan.imports[0]).read_text()
    study.import_file(again.plan.imports[0]).write_text(saved[:100])
    with pytest.raises(StudyError, match="damaged study folder: .*digits-wrn-lstm.json"):
        StudyDir.open(study.path)
    study.import_file(again.plan.imports[0]).write_text(saved)
    # A version-1 study folder (written before --transfer-from and --transfer-budget) reads as having neither.
    raw = json.loads(study.plan_file.read_text())
    raw["version"] = 1
    del raw["imports"], raw["transfer_budget"]
    study.plan_file.write_text(json.dumps(raw))
    old = StudyDir.open(study.path).plan
    assert old.imports == () and old.transfer_budget is None and old.budget == plan.budget


def test_transformer_defaults():
    assert default_baselines("language_model") == ["none", "dropout", "variational_dropout", "sparseout", "ydrop",
                                                   "concrete_dropout"]
    assert default_baselines("translation") == default_baselines("language_model")


def test_help_has_examples(capsys):
    code = main(["study", "--help"])
    out = capsys.readouterr().out
    assert code == 0 and "examples:" in out and "--transfer-to" in out and "--publish" in out
    assert "--transfer-from lm-transformer-lstm" in out


def test_estimate_from_the_measured_trial_times_of_the_presets(tmp_path):
    from autodropout.commands.catalog import TRIAL_SECONDS
    from autodropout.study.driver import estimate_seconds

    plan = make_plan("digits_wrn_quick", budget=16, search_seeds=2, eval_seeds=5)
    # Searches (cold and warm), tuned baselines (Concrete Dropout: one trial), final evaluation.
    trials = 4 * 2 * 16 + 7 * 16 + 1 + (8 + 9) * 5
    assert sum(u.trials for u in plan.units()) == trials
    assert estimate_seconds(plan) == pytest.approx(trials * TRIAL_SECONDS["digits_wrn_quick"]["cpu"] / 2)
    assert estimate_seconds(make_plan(write_experiment(tmp_path), budget=2)) is None  # not a preset
    # lm_transformer_quick has no GPU time measured: no estimate for GPU trials (was a KeyError).
    plan = make_plan("lm_transformer_quick", budget=2)
    main = dataclasses.replace(plan.main, experiment=plan.main.experiment.with_search(gpus_per_trial=1))
    assert estimate_seconds(dataclasses.replace(plan, targets=(main,))) is None
    assert estimate_seconds(plan) == pytest.approx(
        sum(u.trials for u in plan.units()) * TRIAL_SECONDS["lm_transformer_quick"]["cpu"] / 2)


def test_unreachable_cluster_writes_nothing(tmp_path, capsys):
    code, _, err = run(capsys, write_experiment(tmp_path), "--address", "127.0.0.1:1", "--output", tmp_path / "study")
    assert code == 2 and "could not reach the Ray cluster at '127.0.0.1:1'" in err
    assert not (tmp_path / "study").exists()
