"""Top-k re-evaluation (``search.reevaluate``): the record, the ranking export writes, the summary, and
a search that re-evaluates (docs/search.md, "Re-evaluating the best patterns")."""
import json
import random

import pytest

from autodropout.core.errors import ConfigError
from autodropout.runs import RunDir, SearchSummary, export_run
from autodropout.runs.experiment import experiment_from_dict
from autodropout.runs.reevaluation import save_reevaluation
from autodropout.search_spaces import load_patterns
from autodropout.search_spaces.pattern_json import PatternError, parse_patterns
from autodropout.tasks import build_task
from tests.helpers import trial_for_tokens
from tests.tiny import TINY_VISION, write_experiment
from tests.tune.test_search_e2e import autodropout, read_table


def run_with_trials(tmp_path, rewards):
    """A run folder whose trials ``id1, id2, ...`` finished (2 epochs) with ``rewards``."""
    experiment = experiment_from_dict(TINY_VISION)
    space = build_task(experiment.task).search_space()
    run = RunDir.create(tmp_path / "run", experiment, space, "accuracy", 0)
    rng = random.Random(0)
    for index, reward in enumerate(rewards, start=1):
        folder = run.experiment_dir / f"trial_{index:05d}_id{index}"
        folder.mkdir(parents=True)
        trial = trial_for_tokens(experiment.task, space, space.sample(rng), 0)
        (folder / "params.json").write_text(json.dumps(trial.to_config()))
        (folder / "result.json").write_text(json.dumps({"epoch": 2, "reward": reward, "accuracy": reward,
                                                        "trial_id": f"id{index}"}) + "\n")
    return run


def test_export_ranks_reevaluated_patterns_by_their_mean_ahead_of_the_rest(tmp_path):
    run = run_with_trials(tmp_path, [0.70, 0.60, 0.65, 0.50])
    # id1 was lucky on the search's seed; id2 holds up on the others.
    save_reevaluation(run.reevaluation_file, {"id1": [(0, 0.70), (1, 0.52), (2, 0.54)],
                                              "id3": [(0, 0.65), (1, 0.63), (2, 0.64)]})
    exported = export_run(run, top=3)
    patterns = load_patterns(exported.patterns_file)
    assert [(p.trial_id, round(p.reward, 4)) for p in patterns.patterns] == [("id3", 0.64), ("id1", 0.5867),
                                                                             ("id2", 0.6)]
    assert patterns.patterns[0].seed_rewards == ((0, 0.65), (1, 0.63), (2, 0.64))
    assert patterns.patterns[2].seed_rewards is None
    assert patterns.source["trial_id"] == "id3" and patterns.source["reward"] == pytest.approx(0.64)
    summary = SearchSummary.of(run, exported, "finished")
    assert (summary.best_index, summary.best_seeds) == (3, 2 + 1)
    assert "best reward 0.6400 (mean over 3 training seeds after re-evaluation" in summary.text()


def test_without_a_record_export_ranks_by_the_one_reward(tmp_path):
    run = run_with_trials(tmp_path, [0.70, 0.60])
    patterns = load_patterns(export_run(run, top=5).patterns_file)
    assert [p.trial_id for p in patterns.patterns] == ["id1", "id2"]
    assert SearchSummary.of(run, export_run(run), "finished").best_seeds == 1


def test_bad_seed_rewards_in_a_pattern_file_are_refused(tmp_path):
    run = run_with_trials(tmp_path, [0.7])
    save_reevaluation(run.reevaluation_file, {"id1": [(0, 0.7), (1, 0.6)]})
    document = json.loads(export_run(run).patterns_file.read_text())
    assert document["patterns"][0]["seed_rewards"] == [[0, 0.7], [1, 0.6]]
    document["patterns"][0]["seed_rewards"] = [[0, "0.7"]]
    with pytest.raises(PatternError, match=r"pattern 1: field 'seed_rewards': expected a list of \[seed, reward\]"):
        parse_patterns(document)


@pytest.mark.parametrize("values, message", [({"top_k": -1}, "search.reevaluate.top_k: expected a value >= 0"),
                                             ({"seeds": 0}, "search.reevaluate.seeds: expected a positive value"),
                                             ({"top": 2}, "search.reevaluate.top: unknown key")])
def test_bad_reevaluate_settings_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict({**TINY_VISION, "search": {**TINY_VISION["search"], "reevaluate": values}})


@pytest.mark.slow
def test_a_search_reevaluates_its_best_patterns_before_it_exports(tmp_path, cli_env):
    path = write_experiment(tmp_path, {"search": {"trials": 3, "reevaluate": {"top_k": 2, "seeds": 1}}})
    run_dir = tmp_path / "run"
    proc = autodropout("search", path, "--output", run_dir, "--seed", 3, env=cli_env)
    assert "re-evaluating the 2 best patterns on 1 more training seeds (2 trials)" in proc.stdout
    record = json.loads((run_dir / "reevaluation.json").read_text())
    table = {r["trial_id"]: float(r["reward"]) for r in read_table(run_dir) if r["status"] == "done"}
    best_two = sorted(table, key=table.get, reverse=True)[:2]
    assert sorted(record) == sorted(best_two)
    for trial_id, pairs in record.items():
        assert [seed for seed, _ in pairs] == [3, 4] and pairs[0][1] == pytest.approx(table[trial_id])
        assert pairs[1][1] != pairs[0][1]  # another seed, another reward
    patterns = load_patterns(run_dir / "best_patterns.json").patterns
    assert [p.trial_id for p in patterns[:2]] == sorted(record, key=lambda t: -sum(r for _, r in record[t]))
    assert "mean over 2 training seeds after re-evaluation" in proc.stdout
    # Resuming the finished run finds nothing left to do, re-evaluation included.
    again = autodropout("search", "--resume", run_dir, env=cli_env)
    assert "search already complete" in again.stdout and "re-evaluating" not in again.stdout
