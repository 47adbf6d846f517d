"""The warm-started arms of a study (issue 20): where they start, when they run, what they cost, how
they are compared and published; from hand-made unit results (the real run is in test_study_e2e)."""
import json

import pytest

import autodropout as ad
from autodropout.runs import Trial
from autodropout.study import StudyDir, StudyError, make_plan, publish, rebuild_report
from autodropout.study.baselines import tuning_domain
from autodropout.study.plan import searcher_of
from autodropout.study.results import cost_rows, summarize_study
from autodropout.study.unit_results import WarmStart
from autodropout.study.warm_start import mask_baselines, warm_start
from autodropout.tasks import Regularization
from autodropout.tune.lattice import TUNER
from tests.study.fake import START, fake_study, tune_result
from tests.tiny import write_experiment


def test_the_start_point_is_the_best_tuned_mask_baseline(tmp_path):
    experiment = write_experiment(tmp_path)
    plan = make_plan(experiment, budget=2, search_seeds=1, eval_seeds=2,
                     baselines=["none", "dropout", "ydrop", "dropblock"])
    assert plan.arms == ("lstm", "random", "lstm-warm", "random-warm")
    assert mask_baselines(plan) == ["dropout", "dropblock"]  # Y-Drop is no mask: never a start point
    study = StudyDir.create(tmp_path / "study", plan)
    task = plan.main.experiment.task
    for name, params, rewards in [("dropout", {"p": 0.3}, [0.6, 0.7]), ("ydrop", {"p": 0.5}, [0.9, 0.95]),
                                  ("dropblock", {"p": 0.25, "block_size": 2}, [0.8, 0.5])]:
        unit = plan.unit("tune", "main", name)
        trial = Trial(task, Regularization(name=name, params=params), 0, label=name)
        study.write_result(unit, tune_result(unit, trial, rewards, baseline=name,
                                             domain=tuning_domain(name, "vision"), tuner=TUNER))
    start = warm_start(study)
    # The best mask tuning by its own best reward (dropblock 0.8 > dropout 0.7; ydrop's 0.95 is no mask),
    # as a --start-from spec that parses back to the same parameters.
    assert start == WarmStart("dropblock:block_size=2,p=0.25", "dropblock", 0.8,
                              ("tune/main/dropout", "tune/main/dropblock"))
    parsed = plan.main.experiment.with_search(start_from=start.spec).search.start_point()
    assert parsed.regularizer == "dropblock" and dict(parsed.params) == {"block_size": 2, "p": 0.25}


def test_no_successful_mask_tuning_is_one_clear_error(tmp_path):
    plan = make_plan(write_experiment(tmp_path), budget=2, search_seeds=1, eval_seeds=2, baselines=["none", "dropout"])
    study = StudyDir.create(tmp_path / "study", plan)
    with pytest.raises(StudyError, match="no tuned mask baseline has a successful trial"):
        warm_start(study)


@pytest.mark.parametrize("arms, baselines, message", [
    (["lstm-warm"], ["none", "ydrop"], "starts from the best tuned mask baseline, and --baselines has none "
                                        "\\(add one of: dropblock, dropout, droppath, spatial_dropout, "
                                        "variational_dropout\\)"),
    (["lstm", "cold"], ["none", "dropout"], "--arms: expected some of lstm, random, evolution, lstm-warm, "
                                            "random-warm, evolution-warm"),
    (["lstm", "lstm"], ["none", "dropout"], "each once"),
    ([], ["none", "dropout"], "got none"),
])
def test_bad_arms(tmp_path, arms, baselines, message):
    with pytest.raises(StudyError, match=message):
        make_plan(write_experiment(tmp_path), budget=2, arms=arms, baselines=baselines)


def test_without_a_mask_baseline_the_default_arms_are_cold(tmp_path):
    plan = make_plan(write_experiment(tmp_path), budget=2, baselines=["none", "ydrop"])
    assert plan.arms == ("lstm", "random")
    assert make_plan(write_experiment(tmp_path), budget=2, arms=["random-warm", "lstm"],
                     baselines=["dropout"]).arms == ("lstm", "random-warm")  # table order


def test_warm_arms_are_compared_costed_reported_and_published(tmp_path, monkeypatch):
    study = fake_study(tmp_path, warm=True)
    assert [u.id for u in study.plan.units()] == [
        "search/lstm-s0", "search/lstm-s1", "search/random-s0", "search/random-s1", "tune/main/dropout",
        "search/lstm-warm-s0", "search/lstm-warm-s1", "search/random-warm-s0", "search/random-warm-s1", "eval/main"]
    assert StudyDir.open(study.path).plan == study.plan
    (main,) = summarize_study(study)
    assert [a.name for a in main.arms] == ["lstm", "random", "lstm-warm", "random-warm", "none", "dropout"]
    pairs = {(c.arm, c.reference) for c in main.comparisons}
    assert {("lstm", "random"), ("lstm-warm", "random-warm"), ("lstm-warm", "dropout"),
            ("random-warm", "none")} <= pairs and ("lstm-warm", "random") not in pairs
    # lstm-warm per seed: (0.91 + 0.88) / 2, (0.93 + 0.88) / 2, (0.92 + 0.88) / 2; dropout 0.84, 0.87, 0.85
    diff = next(c.diff for c in main.comparisons if (c.arm, c.reference) == ("lstm-warm", "dropout"))
    assert diff.mean == pytest.approx((0.055 + 0.035 + 0.05) / 3)
    # Cost: a warm arm's two searches (2 trials, 20 s each) and the dropout tuning (2 trials) it started from.
    costs = {c.arm: c for c in cost_rows(study)}
    assert (costs["lstm-warm"].trials, costs["lstm-warm"].cpu_s) == (6, 60.0)
    assert (costs["lstm"].trials, costs["lstm"].cpu_s) == (4, 40.0) and costs["dropout"].trials == 2
    assert (costs["lstm-warm"].epochs, costs["lstm"].epochs) == (12, 8)
    unit = study.plan.unit("tune", "main", "dropout")  # a result from before studies took a scheduler:
    old = json.loads(study.result_file(unit).read_text())
    del old["cost"]["epochs"]
    study.result_file(unit).write_text(json.dumps(old))
    assert {c.arm: c.epochs for c in cost_rows(study)}["lstm-warm"] == 12  # every trial ran its schedule
    rebuild_report(study.path)
    report = (study.path / "report.md").read_text()
    assert "lstm-warm (the LSTM controller started from the best tuned mask baseline)" in report
    assert (f"- warm start: `--start-from {START.spec}` (the best of the tuned mask baselines dropout by "
            "tuning reward, 0.8000); those tunings count in the warm arms' cost") in report
    assert "| lstm-warm | random-warm |" in report
    assert "| main | lstm-warm | 6 | 12 |" in report  # trials, then epochs
    assert json.loads((study.path / "report.json").read_text())["plan"]["arms"] == list(study.plan.arms)
    # Published: the LSTM arm whose selected pattern validates best (lstm-warm-s0, 0.96 > lstm-s1's 0.95).
    assert "the lstm-warm arm's best pattern" in _pattern_title(study)
    monkeypatch.setenv("AUTODROPOUT_PATTERNS", str(tmp_path / "shipped"))
    published = ad.load_patterns(publish(study.path, "tiny-warm"))
    assert published.best == ad.load_patterns(study.path / "patterns" / "lstm-warm.json").best
    assert published.source["study"]["arm"] == "lstm-warm"


def _pattern_title(study: StudyDir) -> str:
    from autodropout.study import figures

    titles = []
    real = figures.pattern_figure
    figures.pattern_figure = lambda pattern, title, size: titles.append(title) or real(pattern, title=title, size=size)
    try:
        figures.write_figures(study, summarize_study(study), [])
    finally:
        figures.pattern_figure = real
    return titles[0]


def test_an_evolution_arm_is_planned_when_asked_for(tmp_path):
    plan = make_plan(write_experiment(tmp_path), budget=2, search_seeds=1, eval_seeds=2,
                     baselines=["none", "dropout"], arms=["evolution-warm", "random", "evolution"])
    assert plan.arms == ("random", "evolution", "evolution-warm")  # table order
    assert [u.name for u in plan.search_units()] == ["random-s0", "evolution-s0", "evolution-warm-s0"]
    assert searcher_of("evolution-warm") == "evolution"
