"""What a study reports, from hand-made unit results: numbers checked by hand, the report rebuilt
identically from a copy, the best patterns with their provenance, publishing and loading by name."""
import json
import re
import shutil

import pytest

import autodropout as ad
from autodropout.commands.cli import main
from autodropout.study import StudyDir, publish, rebuild_report
from autodropout.study.results import select_pattern, summarize_study
from tests.study.fake import SCORES, fake_study


@pytest.fixture
def study(tmp_path):
    return fake_study(tmp_path)


def comparison(target, arm, reference):
    return next(c.diff for c in target.comparisons if (c.arm, c.reference) == (arm, reference))


def test_arms_comparisons_and_selection_by_hand(study):
    (main,) = summarize_study(study)
    lstm = main.arm("lstm")
    # lstm per training seed = mean of its two patterns: (0.90 + 0.86) / 2, (0.92 + 0.88) / 2, (0.94 + 0.84) / 2
    assert lstm.test_by_seed == pytest.approx({1000: 0.88, 1001: 0.90, 1002: 0.89})
    assert lstm.test.mean == pytest.approx(0.89) and lstm.test.se == pytest.approx(0.01 / 3 ** 0.5)
    assert main.best_baseline == "dropout"  # the only tuned baseline
    # lstm - none per seed: 0.08, 0.07, 0.08 -> mean 0.076667, s = 0.0057735, se = 0.0033333,
    # half width 4.302653 * 0.0033333 = 0.0143422
    d = comparison(main, "lstm", "none")
    assert d.mean == pytest.approx(0.0766667, abs=1e-6) and d.se == pytest.approx(0.0033333, abs=1e-6)
    assert (d.low, d.high) == (pytest.approx(0.0623245, abs=1e-6), pytest.approx(0.0910089, abs=1e-6))
    # lstm - random per seed: 0.02, 0.06, 0.04 -> mean 0.04, se 0.011547, half width 0.049683
    d = comparison(main, "lstm", "random")
    assert d.mean == pytest.approx(0.04) and d.se == pytest.approx(0.011547, abs=1e-6)
    assert d.high - d.mean == pytest.approx(0.049683, abs=1e-5)
    assert comparison(main, "lstm", "dropout").mean == pytest.approx(0.0366667, abs=1e-6)
    assert {(c.arm, c.reference) for c in main.comparisons} == {
        ("lstm", "none"), ("random", "none"), ("dropout", "none"), ("lstm", "dropout"), ("random", "dropout"),
        ("lstm", "random")}
    evaluation = study.read_result(study.plan.unit("eval", "main"))
    assert select_pattern(evaluation, "lstm").label == "lstm-s1"  # best mean validation, not best test
    assert select_pattern(evaluation, "random").label == "random-s0"


def test_an_imported_pattern_is_an_arm_compared_with_none_and_the_best_tuned(tmp_path):
    study = fake_study(tmp_path, imported=True)
    (main,) = summarize_study(study)
    assert [a.name for a in main.arms] == ["lstm", "random", "digits-wrn-lstm", "none", "dropout"]
    assert main.best_baseline == "dropout"  # an imported pattern is never the best tuned baseline
    # digits-wrn-lstm - none per seed: 0.06, 0.03, 0.08; - dropout: 0.02, -0.01, 0.04
    assert comparison(main, "digits-wrn-lstm", "none").mean == pytest.approx(0.0566667, abs=1e-6)
    assert comparison(main, "digits-wrn-lstm", "dropout").mean == pytest.approx(0.0166667, abs=1e-6)
    assert {(c.arm, c.reference) for c in main.comparisons if "digits-wrn-lstm" in (c.arm, c.reference)} == {
        ("digits-wrn-lstm", "none"), ("digits-wrn-lstm", "dropout")}
    rebuild_report(study.path)
    text = (study.path / "report.md").read_text()
    assert "- imported pattern `digits-wrn-lstm` (--transfer-from digits-wrn-lstm)" in text
    assert "| digits-wrn-lstm | dropout (best tuned) | +0.0167 ± 0.015 |" in text
    assert "| digits-wrn-lstm | learned conv pattern (3 sites), imported from digits-wrn-lstm | 0.8500 |" in text
    arms = json.loads((study.path / "report.json").read_text())["targets"][0]["arms"]
    assert [(a["name"], a["kind"]) for a in arms] == [("lstm", "search"), ("random", "search"),
                                                      ("digits-wrn-lstm", "imported"), ("none", "baseline"),
                                                      ("dropout", "baseline")]
    costs = {c["arm"]: c for c in json.loads((study.path / "report.json").read_text())["costs"]}
    assert costs["digits-wrn-lstm"]["trials"] == 0 and costs["digits-wrn-lstm"]["eval_cpu_s"] == 15.0
    # Its pattern file is not a search arm's: patterns/ holds only lstm.json and random.json.
    assert sorted(p.name for p in (study.path / "patterns").iterdir()) == ["lstm.json", "random.json"]


def test_report_tables_and_files(study):
    written = {p.name for p in rebuild_report(study.path)}
    assert written == {"lstm.json", "random.json", "search_curves.png", "test_metrics.png", "best_pattern.png",
                       "report.json", "report.md"}
    text = (study.path / "report.md").read_text()
    assert "| lstm | none | +0.0767 ± 0.0033 | [+0.0623, +0.0910] | better |" in text
    assert "| lstm | random | +0.0400 ± 0.012 | [-0.00968, +0.0897] | no difference at 95% |" in text
    assert "Best tuned baseline (by mean validation accuracy): **dropout**." in text
    assert "| dropout | dropout(p=0.2) | 0.8600 | 0.8533 ± 0.0088 | [0.8154, 0.8913] | 3 |" in text
    assert "units finished: 6 of 6" in text and "![the best learned pattern](best_pattern.png)" in text
    report = json.loads((study.path / "report.json").read_text())
    lstm = next(a for a in report["targets"][0]["arms"] if a["name"] == "lstm")
    assert lstm["test"]["mean"] == pytest.approx(0.89) and len(lstm["methods"]) == 2
    rows = {(c["target"], c["arm"]): c for c in report["costs"]}
    assert rows["main", "lstm"]["trials"] == 4 and rows["main", "lstm"]["cpu_s"] == 40.0
    assert rows["main", "lstm"]["trials_per_hour"] == pytest.approx(3600 * 4 / 20.0)  # wall 10 s per search
    assert rows["main", "lstm"]["eval_cpu_s"] == 30.0  # 2 patterns x 3 seeds x 5 s
    assert rows["main", "none"]["trials"] == 0


def test_the_report_names_the_tuner_and_domain_each_tuning_ran_with(study):
    rebuild_report(study.path)
    text = (study.path / "report.md").read_text()
    assert ("- tuned baselines (tuned by a lattice over the domain, then a finer lattice around its best; best on "
            "validation): none, dropout (p ~ U(0, 0.7))") in text
    assert "| main | dropout | p ~ U(0, 0.7) | p=0.2 | 0.8000 | 2 (0) |" in text
    # A study from before the lattice tuner: its results name no tuner and hold the old domain.
    unit = study.plan.unit("tune", "main", "dropout")
    old = {k: v for k, v in json.loads(study.result_file(unit).read_text()).items() if k != "tuner"}
    study.result_file(unit).write_text(json.dumps({**old, "domain": {"p": ["uniform", 0.0, 0.5]}}))
    rebuild_report(study.path)
    text = (study.path / "report.md").read_text()
    assert ("- tuned baselines (tuned by Ray Tune's random search (BasicVariantGenerator); best on validation): "
            "none, dropout (p ~ U(0, 0.5))") in text
    assert "| main | dropout | p ~ U(0, 0.5) | p=0.2 | 0.8000 | 2 (0) |" in text


def test_the_report_rebuilt_from_a_copy_is_identical(study, tmp_path):
    rebuild_report(study.path)
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(study.path, copy)
    original = study.path.rename(tmp_path / "moved")  # the original paths no longer exist
    derived = ["report.md", "report.json", "patterns/lstm.json", "patterns/random.json"]
    for name in derived + ["search_curves.png", "test_metrics.png", "best_pattern.png"]:
        (copy / name).unlink()
    rebuild_report(copy)
    for name in derived:
        assert (copy / name).read_bytes() == (original / name).read_bytes(), name
    assert all((copy / name).stat().st_size > 0
               for name in ("search_curves.png", "test_metrics.png", "best_pattern.png"))


def test_best_pattern_file_carries_its_provenance(study):
    rebuild_report(study.path)
    patterns = ad.load_patterns(study.path / "patterns" / "lstm.json")
    assert [p.rank for p in patterns.patterns] == [1, 2]
    selected = study.read_result(study.plan.unit("search", "main", "lstm-s1")).best
    assert patterns.patterns[0].trial_id == selected.trial_id
    provenance = patterns.source["study"]
    assert provenance["arm"] == "lstm" and provenance["budget"] == 2 and provenance["search_seed"] == 1
    assert provenance["eval_seeds"] == [1000, 1001, 1002] and provenance["search_seeds"] == [0, 1]
    assert provenance["test"]["mean"] == pytest.approx(sum(SCORES["lstm-s1"][1]) / 3)
    versus = {v["reference"]: v for v in provenance["versus"]}
    assert versus["none"]["mean"] == pytest.approx((0.06 + 0.05 + 0.03) / 3)
    assert set(versus) == {"none", "dropout"}
    assert patterns.site_shapes is not None


def test_a_partial_study_reports_what_has_finished(tmp_path):
    study = fake_study(tmp_path, finished=False)
    written = {p.name for p in rebuild_report(study.path)}
    assert written == {"search_curves.png", "report.json", "report.md"}
    text = (study.path / "report.md").read_text()
    assert "units finished: 5 of 6 (partial report)" in text and "Paired test differences" not in text


def test_publish_then_load_show_list_by_name(study, tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "shipped"
    monkeypatch.setenv("AUTODROPOUT_PATTERNS", str(shipped))
    rebuild_report(study.path)
    assert main(["study", "--publish", str(study.path), "tiny-lstm"]) == 0
    assert "published" in capsys.readouterr().out
    patterns = ad.load_patterns("tiny-lstm")
    assert len(patterns.patterns) == 1 and patterns.source["study"]["name"] == "tiny-lstm"
    assert patterns.best == ad.load_patterns(study.path / "patterns" / "lstm.json").best
    assert main(["show", "tiny-lstm"]) == 0 and "rank 1 of tiny-lstm" in capsys.readouterr().out
    assert main(["list", "patterns"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny-lstm "))
    assert "conv, 3 sites" in row and "lstm, 2 trials, seed 1" in row
    assert re.search(r"accuracy 0\.86\d* ± 0\.\d+ ", row)  # the mean to the standard error's decimals
    assert main(["study", "--publish", str(study.path), "tiny-lstm"]) == 2  # no silent overwrite
    assert "already published" in capsys.readouterr().err


def test_unknown_pattern_name_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTODROPOUT_PATTERNS", str(tmp_path))
    assert main(["show", "no-such-pattern"]) == 2
    assert "no patterns are shipped yet" in capsys.readouterr().err
    with pytest.raises(ad.errors.UnknownNameError, match="no shipped pattern of that name"):
        ad.load_patterns("no-such-pattern")
    with pytest.raises(ad.PatternFormatError, match="no such file"):
        ad.load_patterns(tmp_path / "missing.json")  # a path stays a path


def test_publishing_needs_a_finished_study_and_a_good_name(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODROPOUT_PATTERNS", str(tmp_path / "shipped"))
    study = fake_study(tmp_path, finished=False)
    with pytest.raises(ad.errors.UserInputError, match="nothing to publish yet"):
        publish(study.path, "early")
    with pytest.raises(ad.errors.UserInputError, match="pattern name 'Bad Name'"):
        publish(study.path, "Bad Name")
    assert not (tmp_path / "shipped").exists()


def test_study_json_round_trips(study):
    again = StudyDir.open(study.path)
    assert again.plan.to_json() == study.plan.to_json()
    assert [u.id for u in again.plan.units()] == ["search/lstm-s0", "search/lstm-s1", "search/random-s0",
                                                  "search/random-s1", "tune/main/dropout", "eval/main"]
