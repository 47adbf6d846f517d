"""Budget curves (``autodropout study --budgets``) without Ray: the plan, each unit's best within
its first b trials (the real result code on hand-made trial records), the extra methods of the final
evaluation (one per search seed and tuned baseline at each smaller budget, none twice), the curves
and their comparisons, and the report. tests/study/test_study_e2e.py runs one for real."""
import json
import statistics

import pytest

from autodropout.runs import Trial
from autodropout.runs.experiment import load_experiment
from autodropout.runs.results import TrialRecord
from autodropout.search_spaces import ConvSpace
from autodropout.study.baselines import tuning_domain
from autodropout.study.curves import budget_curves, curve_comparisons
from autodropout.study.methods import eval_methods
from autodropout.study.plan import MAIN, StudyDir, StudyError
from autodropout.study.report import write_report
from autodropout.study.request import make_plan
from autodropout.study.unit_results import Cell, Cost, EvalResult, SearchResult, TuneResult
from autodropout.study.units import _trials_fields
from autodropout.tasks import Regularization
from autodropout.tune.lattice import TUNER, design
from tests.helpers import trial_for_tokens
from tests.tiny import write_experiment

SEEDS = (1000, 1001)
#: Validation rewards per trial, in sampling order, of each search (budget 4; curve at 2 and 4).
REWARDS = {
    "lstm-s0": [0.50, 0.70, 0.60, 0.90],  # best of 2: trial 1; of 4: trial 3
    "lstm-s1": [0.80, 0.60, 0.70, 0.75],  # the same trial at both budgets: evaluated once
    "random-s0": [0.40, 0.45, 0.50, 0.55],
    "random-s1": [0.65, 0.50, 0.60, 0.55],
    "dropout": [0.55, 0.65, 0.60, 0.70],
    "concrete_dropout": [0.62],  # nothing to tune: one trial
}


def records(task, rewards, make):
    return [TrialRecord(index=i + 1, trial_id=f"t{i}", trial=make(i), metric=r, reward=r, status="done",
                        duration_s=10.0 + i, epochs=2) for i, r in enumerate(rewards)]


@pytest.fixture
def study(tmp_path):
    experiment_file = write_experiment(tmp_path)
    plan = make_plan(experiment_file, budgets=[4, 2], search_seeds=2, eval_seeds=2,
                     baselines=["none", "dropout", "concrete_dropout"], arms=["lstm", "random"])
    study = StudyDir.create(tmp_path / "study", plan)
    task = load_experiment(experiment_file).task
    experiment = plan.main.experiment
    space = ConvSpace(num_sites=3)
    for n, unit in enumerate(plan.search_units()):
        made = records(task, REWARDS[unit.name],
                       lambda i, n=n: trial_for_tokens(task, space, space.sample(10 * n + i), 0))
        study.write_result(unit, SearchResult(**_trials_fields(unit, made, experiment, 0, plan.budgets),
                                              arm=unit.name[:-3], search_seed=0, start=None, site_shapes=None))
    for name in ("dropout", "concrete_dropout"):
        unit = plan.unit("tune", MAIN, name)
        made = records(task, REWARDS[name], lambda i, name=name: Trial(
            task, Regularization(name=name, params={"p": 0.1 * i} if name == "dropout" else {}), 0))
        study.write_result(unit, TuneResult(**_trials_fields(unit, made, experiment, 0, plan.budgets), baseline=name,
                                            domain=tuning_domain(name, "vision"), tuner=TUNER))
    return study


def test_the_plan_keeps_the_smaller_budgets_and_a_baseline_without_a_domain_gets_one_trial(study):
    plan = StudyDir.open(study.path).plan
    assert plan.budget == 4 and plan.budgets == (2,) and plan.curve_budgets == (2, 4)
    assert plan.unit("tune", MAIN, "concrete_dropout").trials == 1 and plan.unit("tune", MAIN, "dropout").trials == 4
    assert design({}, 3) == [{}, {}, {}]  # what the one-trial tuning suggests: the defaults


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(budgets=[2, 2]), "--budgets: expected distinct trial counts of at least 1"),
    (dict(budgets=[0, 4]), "--budgets: expected distinct trial counts of at least 1"),
    (dict(budgets=[2, 4], budget=8), "--budget 8 and --budgets 2,4: the largest of --budgets is the budget"),
])
def test_bad_budgets_are_one_line_naming_the_option(tmp_path, kwargs, message):
    with pytest.raises(StudyError, match=message):
        make_plan(write_experiment(tmp_path), **kwargs)


def test_a_damaged_budgets_entry_is_refused_on_open(study):
    raw = json.loads(study.plan_file.read_text())
    study.plan_file.write_text(json.dumps({**raw, "budgets": [4]}))
    with pytest.raises(StudyError, match=r"study.json budgets \[4\] \(expected ascending, "
                                         r"each from 1 to below the budget 4\)"):
        StudyDir.open(study.path)


def test_each_unit_records_its_best_within_each_smaller_budget(study):
    lstm0 = study.read_result(study.plan.unit("search", MAIN, "lstm-s0"))
    assert lstm0.best.trial_id == "t3" and lstm0.best_at[2].trial_id == "t1"
    assert lstm0.best_at[2].reward == 0.70
    concrete = study.read_result(study.plan.unit("tune", MAIN, "concrete_dropout"))
    assert concrete.best_at == {} and concrete.best.trial_id == "t0"  # one trial: nothing below it


def test_the_evaluation_adds_each_seeds_best_so_far_once(study):
    methods, missing = eval_methods(study, study.plan.main, None)
    labels = [info.label for _, info in methods]
    assert missing == []
    assert labels == ["lstm-s0", "lstm-s1", "random-s0", "random-s1", "none", "dropout", "concrete_dropout",
                      # lstm-s1's best of 2 is its best of 4 (t0), random-s1's too (t0): not again
                      "lstm-s0@2", "random-s0@2", "dropout@2"]
    extra = {info.label: info for _, info in methods}
    assert extra["lstm-s0@2"].arm == "lstm" and extra["lstm-s0@2"].budget == 2
    assert extra["lstm-s0@2"].source == "t1" and extra["dropout@2"].params == {"p": 0.1}
    assert extra["lstm-s0"].budget is None and "budget" not in extra["lstm-s0"].to_json()


def evaluate(study, test):
    """A finished final evaluation in which method ``label`` scores ``test[label]`` on both seeds
    (seed 1001 a little higher), validation = test."""
    methods, _ = eval_methods(study, study.plan.main, None)
    infos = [info for _, info in methods]
    cells = [Cell(i.label, s, 5.0, test[i.label] + 0.01 * (s - 1000), test[i.label] + 0.01 * (s - 1000), None)
             for i in infos for s in SEEDS]
    unit = study.plan.unit("eval", MAIN)
    study.write_result(unit, EvalResult(unit.id, MAIN, "eval", "accuracy", "max", "x",
                                        Cost(len(cells), 5.0 * len(cells), 5.0 * len(cells), 0.0, 2 * len(cells), 1.0),
                                        methods=tuple(infos), missing=(), cells=tuple(cells)))


TEST = {"lstm-s0": 0.90, "lstm-s1": 0.80, "random-s0": 0.70, "random-s1": 0.74, "none": 0.50, "dropout": 0.76,
        "concrete_dropout": 0.60, "lstm-s0@2": 0.72, "random-s0@2": 0.66, "dropout@2": 0.68}


def test_the_curves_follow_each_arm_by_budget_with_spread_over_search_seeds(study):
    evaluate(study, TEST)
    curves = {c.arm: c for c in budget_curves(study)}
    assert list(curves) == ["lstm", "random", "none", "dropout", "concrete_dropout"]
    lstm = curves["lstm"].points
    assert [p.budget for p in lstm] == [2, 4]
    # Per search seed: the mean over the two evaluation seeds (+0.005); lstm-s1 is the same trial at both.
    assert (lstm[0].values == pytest.approx({0: 0.725, 1: 0.805})
            and lstm[1].values == pytest.approx({0: 0.905, 1: 0.805}))
    assert lstm[1].test.mean == pytest.approx(0.855) and lstm[1].test.n == 2
    assert lstm[1].test.se == pytest.approx(statistics.stdev([0.905, 0.805]) / 2 ** 0.5)
    # CPU-seconds of the first b trials (10, 11, 12, 13 s at 1 CPU per trial), the same for both seeds.
    assert [p.cpu_s for p in lstm] == [21.0, 46.0]
    dropout = curves["dropout"].points
    assert [(p.budget, p.test.n) for p in dropout] == [(2, 2), (4, 2)]  # over the evaluation seeds
    assert dropout[0].test.mean == pytest.approx(0.685)
    assert [(p.budget, p.cpu_s) for p in curves["concrete_dropout"].points] == [(1, 10.0)]
    assert [p.budget for p in curves["none"].points] == [0]
    (at2, at4) = curve_comparisons(study, list(curves.values()))
    assert (at2.arm, at2.reference, at2.budget) == ("lstm", "random", 2)
    assert at2.diff.mean == pytest.approx(((0.725 - 0.665) + (0.805 - 0.745)) / 2)
    assert at4.diff.mean == pytest.approx(((0.905 - 0.705) + (0.805 - 0.745)) / 2)


def test_the_tables_leave_the_curves_extra_methods_out_and_the_report_shows_the_curve(study):
    evaluate(study, TEST)
    written = {p.name for p in write_report(study)}
    assert "budget_curves.png" in written and (study.path / "budget_curves.png").stat().st_size
    report = (study.path / "report.md").read_text()
    assert "budget curve at 2, 4 trials" in report and "concrete_dropout (one trial: nothing to tune)" in report
    assert "### Budget curve: test accuracy of the best found within the first b trials" in report
    assert "| lstm | 0.7650 ± 0.040 | 0.8550 ± 0.050 | 0.01 |" in report
    assert "| concrete_dropout | 0.6050 ± 0.0050 at 1 trial |  | 0.00 |" in report
    assert "| lstm | random | 2 | +0.0600 ± 0 |" in report
    assert "![test metric against trials](budget_curves.png)" in report
    lstm_row = next(line for line in report.splitlines() if line.startswith("| lstm | 2 patterns"))
    assert "0.8550" in lstm_row  # the main table: the full-budget patterns only, not lstm-s0@2
    saved = json.loads((study.path / "report.json").read_text())
    assert [c["arm"] for c in saved["budget_curves"]] == ["lstm", "random", "none", "dropout", "concrete_dropout"]
    assert [m["label"] for m in next(a for a in saved["targets"][0]["arms"] if a["name"] == "lstm")["methods"]] == \
        ["lstm-s0", "lstm-s1"]
