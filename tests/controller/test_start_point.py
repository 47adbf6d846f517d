"""``search.start_from``: parsed where it enters, resolved to tokens once, recorded in the run folder."""
import json
import random

import pytest

from autodropout.core.errors import ConfigError
from autodropout.runs import RunDir, RunDirError
from autodropout.runs.experiment import experiment_from_dict, parse_start_from
from autodropout.search_spaces import TransformerSpace, save_patterns
from autodropout.tasks import build_task
from autodropout.tasks.mapped_pattern import pattern_for_task
from autodropout.tune.start_point import StartPointError, start_tokens
from tests.tiny import TINY_VISION


@pytest.fixture(scope="module")
def vision():
    """The tiny vision experiment, its task (digits, WRN-10-1) and its search space."""
    experiment = experiment_from_dict(TINY_VISION)
    task = build_task(experiment.task)
    return experiment, task, task.search_space()


@pytest.mark.parametrize("spec, name, params", [
    ("dropout:p=0.135", "dropout", {"p": 0.135}),
    ("dropblock:p=0.1,block_size=3", "dropblock", {"p": 0.1, "block_size": 3}),
    (" spatial_dropout ", "spatial_dropout", {}),
])
def test_a_regularizer_spec_is_parsed_to_numbers(spec, name, params):
    start = parse_start_from(spec)
    assert (start.regularizer, dict(start.params), start.pattern) == (name, params, None)
    assert all(type(v) is type(params[k]) for k, v in start.params.items())


@pytest.mark.parametrize("spec", ["runs/x/best_patterns.json", "digits-wrn-lstm", "patterns.json", "C:/p/x.json"])
def test_anything_else_is_a_pattern_file_or_a_shipped_name(spec):
    start = parse_start_from(spec)
    assert (start.pattern, start.regularizer) == (spec, None)


@pytest.mark.parametrize("spec, message", [
    ("dropuot:p=0.1", "unknown regularizer 'dropuot'; registered: "),
    ("dropout:q=0.1", "regularizer 'dropout' has no parameter 'q'"),
    ("dropout:p=2", "regularizer 'dropout': "),
    ("dropout:p", "expected NAME:KEY=VALUE,KEY=VALUE, got 'p'"),
    ("conv_pattern:p=0.1", "is a learned pattern"),
    ("none", "'none' is no start point"),
    ("  ", "expected NAME:KEY=VALUE,... (a regularizer) or a pattern file"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_start_from(spec)


def test_the_search_section_names_its_keys():
    with pytest.raises(ConfigError, match=r"search\.start_from: 'dropuot:p=0\.1': unknown regularizer"):
        experiment_from_dict({**TINY_VISION, "search": {"start_from": "dropuot:p=0.1"}})
    with pytest.raises(ConfigError, match=r"search\.start_probability: must be a finite number > 0\.0 and < 1\.0"):
        experiment_from_dict({**TINY_VISION, "search": {"start_probability": 1.5}})
    experiment = experiment_from_dict({**TINY_VISION, "search": {"start_from": "dropout:p=0.135"}})
    assert experiment.search.start_point().params == {"p": 0.135}
    assert experiment_from_dict(__import__("yaml").safe_load(experiment.to_yaml())) == experiment


def pattern_file(path, space, seed=0):
    pattern = space.decode(space.sample(random.Random(seed)))
    save_patterns(path, [pattern], space)
    return pattern


def test_a_pattern_file_of_the_tasks_space_starts_at_its_best_pattern(tmp_path, vision):
    _, task, space = vision
    pattern = pattern_file(tmp_path / "p.json", space)
    assert start_tokens(parse_start_from(str(tmp_path / "p.json")), task, space) == space.encode(pattern)


def test_a_pattern_of_another_depth_is_mapped_by_relative_depth(tmp_path, vision):
    _, task, space = vision
    deeper = type(space).from_config({**space.config(), "num_sites": 2 * space.num_sites})
    pattern_file(tmp_path / "deep.json", deeper, seed=1)
    tokens = start_tokens(parse_start_from(str(tmp_path / "deep.json")), task, space)
    assert tokens == space.encode(pattern_for_task(task, tmp_path / "deep.json"))
    assert len(tokens) == len(space.decisions)


def test_a_shipped_name_is_found(tmp_path, monkeypatch, vision):
    _, task, space = vision
    monkeypatch.setenv("AUTODROPOUT_PATTERNS", str(tmp_path))
    pattern = pattern_file(tmp_path / "my-start.json", space, seed=2)
    assert start_tokens(parse_start_from("my-start"), task, space) == space.encode(pattern)


def test_unusable_pattern_files_name_start_from(tmp_path, vision):
    _, task, space = vision
    with pytest.raises(StartPointError, match="start_from 'nope': nope: no such pattern file, and no shipped pattern"):
        start_tokens(parse_start_from("nope"), task, space)
    pattern_file(tmp_path / "lm.json", TransformerSpace(space.num_sites))
    with pytest.raises(StartPointError, match=r"start_from '.*lm\.json': .*transformer"):
        start_tokens(parse_start_from(str(tmp_path / "lm.json")), task, space)
    first = space.decision_types[0]
    narrow = task.search_space({first[0]: [first[1][0]]})  # search.values leaves one choice of the first field
    seed = next(s for s in range(100) if space.sample(random.Random(s))[0] != 0)
    pattern_file(tmp_path / "wide.json", space, seed=seed)
    with pytest.raises(StartPointError, match=r"its pattern is not in this search's space \(search\.values\)"):
        start_tokens(parse_start_from(str(tmp_path / "wide.json")), task, narrow)


def test_a_regularizer_starts_at_the_pattern_nearest_to_it(vision):
    from autodropout.tasks.baseline_pattern import pattern_like

    _, task, space = vision
    start = parse_start_from("dropout:p=0.135")
    expected = pattern_like(start.regularization(), space, task.site_layout, task.describe_sites(task.config).shapes)
    assert start_tokens(start, task, space) == space.encode(expected)
    with pytest.raises(StartPointError, match="start_from 'sparseout': "):
        start_tokens(parse_start_from("sparseout"), task, space)


def test_the_run_folder_records_the_start_point(tmp_path, vision):
    experiment, task, space = vision
    experiment = experiment.with_search(start_from="dropout:p=0.135")
    tokens = space.sample(random.Random(3))
    RunDir.create(tmp_path / "run", experiment, space, task.metric, 0, start_tokens=tokens)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["start_from"], info["start_tokens"]) == ("dropout:p=0.135", tokens)
    opened = RunDir.open(tmp_path / "run")
    assert opened.start_tokens == tuple(tokens) and opened.experiment.search.start_from == "dropout:p=0.135"

    info["start_tokens"] = tokens[:-1]
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunDirError, match="damaged run.json"):
        RunDir.open(tmp_path / "run")
    del info["start_tokens"]  # a run from before start points searched from scratch
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    assert RunDir.open(tmp_path / "run").start_tokens is None

