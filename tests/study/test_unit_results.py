"""The typed unit results (autodropout.study.unit_results): each kind round-trips through its JSON, a
damaged result file is one line naming the file and the field, and the results older versions wrote
(without the fields added since) still open with the documented fallbacks."""
import json

import pytest

from autodropout.core.errors import ConfigError
from autodropout.study.results import cost_rows
from autodropout.study.unit_results import (
    RANDOM_TUNER,
    Best,
    Cell,
    Cost,
    EvalMethod,
    EvalResult,
    SearchResult,
    TrialRow,
    TuneResult,
    WarmStart,
    result_from_json,
)
from tests.study.fake import fake_study

HEAD = dict(target="main", metric="accuracy", mode="max", finished="2026-01-01T00:00:00+00:00")
COST = Cost(trials=2, trial_s=20.0, cpu_s=20.0, gpu_s=0.0, epochs=4, wall_s=12.5)
BEST = Best("t1", 0.8, 0.8, {"task": {"kind": "vision"}, "seed": 0, "regularizer": {"name": "dropout", "params": {}}})
TRIALS = (TrialRow(0, "t0", "done", 0.7, 0.7, 10.0, {"p": 0.1}, None),
          TrialRow(1, "t1", "error", None, None, 10.0, None, (1, 2, 3)))

RESULTS = [
    SearchResult(unit="search/lstm-warm-s0", name="lstm-warm-s0", **HEAD, cost=COST, seed=0, trials=TRIALS, best=BEST,
                 best_at={1: None}, arm="lstm-warm", search_seed=0,
                 start=WarmStart("dropout:p=0.2", "dropout", 0.8, ("tune/main/dropout",)), site_shapes=((8, 4, 4),)),
    TuneResult(unit="tune/main/dropout", name="dropout", **HEAD, cost=COST, seed=0, trials=TRIALS, best=None,
               best_at={}, baseline="dropout", domain={"p": ["uniform", 0.0, 0.7]}, tuner="a lattice"),
    EvalResult(unit="eval/main", name="eval", **HEAD, cost=COST,
               methods=(EvalMethod("lstm-s0@1", "lstm", 0, "t1", 0.9, "learned conv pattern (1 site)", None,
                                   [{"unit": "element"}], budget=1),
                        EvalMethod("none", "none", None, None, None, "none", {}, None)),
               missing=("random-s0: no successful trial to evaluate",),
               cells=(Cell("none", 1000, 5.0, 0.8, 0.81, None, {"accuracy": 0.8}, {"accuracy": 0.81}),
                      Cell("none", 1001, 5.0, None, None, "diverged"))),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.kind)
def test_each_kind_round_trips_through_its_json(result):
    text = json.dumps(result.to_json(), allow_nan=False)
    assert result_from_json(result.kind, json.loads(text), "r.json") == result
    assert type(result).from_json(json.loads(text), "r.json") == result


def test_the_json_keeps_the_format_older_readers_know():
    search, _, evaluation = (r.to_json() for r in RESULTS)
    assert list(search) == ["format", "unit", "kind", "target", "name", "metric", "mode", "finished", "arm",
                            "search_seed", "start", "site_shapes", "seed", "trials", "best", "best_at", "cost"]
    assert search["format"] == "autodropout.study.unit" and search["best_at"] == {"1": None}
    assert search["site_shapes"] == [[8, 4, 4]] and search["trials"][1]["tokens"] == [1, 2, 3]
    assert "budget" not in evaluation["methods"][1] and evaluation["methods"][0]["budget"] == 1
    assert "val_metrics" not in evaluation["cells"][1] and evaluation["cells"][0]["val_metrics"] == {"accuracy": 0.8}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["best"].update(reward="high"), r"r\.json: best\.reward: expected a finite number, got 'high'"),
    (lambda d: d["trials"][1].pop("status"), r"r\.json: trials\[1\]\.status: missing \(expected a string\)"),
    (lambda d: d["cost"].update(trials=True), r"r\.json: cost\.trials: expected an integer, got True"),
    (lambda d: d.update(kind="tune"), r"r\.json: kind: expected 'search', got 'tune'"),
    (lambda d: d.update(format="other"), r"r\.json: format: expected 'autodropout.study.unit', got 'other'"),
    (lambda d: d["start"].update(tunings="tune/main/dropout"), r"r\.json: start\.tunings: expected a list of unit ids"),
    (lambda d: d["best_at"].update(two=None), r"r\.json: best_at: expected trial counts as keys, got 'two'"),
    (lambda d: d.update(mode="up"), r"r\.json: mode: expected 'max' or 'min', got 'up'"),
])
def test_a_malformed_result_names_the_file_and_the_field(edit, message):
    data = RESULTS[0].to_json()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        SearchResult.from_json(data, "r.json")


def test_a_damaged_result_file_is_one_line_naming_it(tmp_path):
    study = fake_study(tmp_path)
    unit = study.plan.unit("search", "main", "lstm-s0")
    study.result_file(unit).write_text("{not json")
    with pytest.raises(ConfigError, match=r"lstm-s0\.json: damaged unit result"):
        study.read_result(unit)


def test_old_results_open_with_the_fallbacks(tmp_path):
    study = fake_study(tmp_path)
    tune = study.plan.unit("tune", "main", "dropout")
    search = study.plan.unit("search", "main", "lstm-s0")
    evaluation = study.plan.unit("eval", "main")
    for unit, dropped in [(tune, ("tuner", "domain", "best_at")), (search, ("start", "site_shapes", "best_at")),
                          (evaluation, ("missing",))]:
        data = json.loads(study.result_file(unit).read_text())
        for key in dropped:
            del data[key]
        del data["cost"]["epochs"], data["cost"]["wall_s"]
        study.result_file(unit).write_text(json.dumps(data))
    old = study.read_result(tune)
    assert (old.tuner, old.domain, old.best_at) == (RANDOM_TUNER, {}, {})
    # Before studies took a scheduler every trial ran its schedule: trials x the tiny preset's 2 epochs.
    assert (old.cost.epochs, old.cost.wall_s) == (2 * 2, 0.0)
    old = study.read_result(search)
    assert (old.start, old.site_shapes, old.best_at) == (None, None, {})
    assert study.read_result(evaluation).missing == ()
    assert {c.arm: c.epochs for c in cost_rows(study)}["lstm"] == 2 * 2 * 2
    without_schedule = json.loads(study.result_file(tune).read_text())
    with pytest.raises(ConfigError, match=r"cost\.epochs: missing"):
        TuneResult.from_json(without_schedule, "r.json")  # no schedule given: nothing to fall back on
