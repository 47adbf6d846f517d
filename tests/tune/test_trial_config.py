"""The trial config Ray carries: the pattern once (as its sites), the space in its one serialized form,
validated once where it enters (the worker's ``Trial.from_config``), and trusted from there to the
model; trial folders of older versions (the pattern's tokens beside it, the space as one object) still
read and report."""
import json

import pytest

from autodropout.regularizers import pattern_conv, pattern_embedding, pattern_transformer
from autodropout.runs import RunDir, Trial, read_trials
from autodropout.runs.experiment import experiment_from_dict
from autodropout.runs.results import write_trials_csv
from autodropout.search_spaces import ConvSpace, SearchSpace, TransformerSpace, space_to_json
from autodropout.tasks import build_task
from tests.helpers import trial_for_tokens
from tests.tiny import TINY_VISION

EXPERIMENT = experiment_from_dict(TINY_VISION)
CONV = ConvSpace(3)  # the tiny vision task's WRN-10-1 has 3 sites
LM = TransformerSpace(2, num_embeddings=1)


def old_config(trial: Trial) -> dict:
    """``trial``'s config as versions before the one space form wrote it: the space as one object and the
    pattern's tokens beside the pattern."""
    config = trial.to_config()
    space = {"kind": config.pop("space"), **config.pop("space_config")}
    return {**config, "space": space, "tokens": trial.tokens}


@pytest.mark.parametrize("space", [CONV, LM], ids=["conv", "transformer"])
def test_the_config_carries_the_pattern_once_and_the_space_in_its_one_form(space):
    trial = trial_for_tokens(EXPERIMENT.task, space, space.sample(4), 7)
    config = json.loads(json.dumps(trial.to_config()))
    assert "tokens" not in config
    assert {key: config[key] for key in ("space", "space_config")} == space_to_json(space)
    assert Trial.from_config(config) == trial


@pytest.mark.parametrize("space", [CONV, LM], ids=["conv", "transformer"])
def test_an_old_params_json_with_tokens_and_the_space_as_one_object_still_reads(space):
    trial = trial_for_tokens(EXPERIMENT.task, space, space.sample(5), 0)
    old = json.loads(json.dumps(old_config(trial)))
    assert Trial.from_config(old) == trial
    stale = {**old, "tokens": [0] * len(old["tokens"])}  # read and ignored: the pattern is the truth
    assert Trial.from_config(stale) == trial


def test_an_old_run_folder_still_reports_its_trials_and_their_tokens(tmp_path):
    run = RunDir.create(tmp_path / "run", EXPERIMENT, CONV, "accuracy", seed=0)
    trials = [trial_for_tokens(EXPERIMENT.task, CONV, CONV.sample(seed), 0) for seed in (1, 2)]
    for index, trial in enumerate(trials):
        folder = run.experiment_dir / f"trial_{index}_t{index}"
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps(old_config(trial)))
        (folder / "result.json").write_text(json.dumps({"accuracy": 0.5, "reward": 0.5, "epoch": 2,
                                                        "done": True}) + "\n")
    records = read_trials(run.experiment_dir, "accuracy")
    assert [r.trial for r in records] == trials
    rows = write_trials_csv(tmp_path / "trials.csv", records, "accuracy").read_text().splitlines()[1:]
    assert [row.split(",")[7] for row in rows] == [" ".join(map(str, t.tokens)) for t in trials]


def counted(function, calls, key):
    def count(*args, **kwargs):
        calls[key] = calls.get(key, 0) + 1
        return function(*args, **kwargs)

    return count


@pytest.fixture
def checks(monkeypatch):
    """Calls of every check of a pattern: the space's (per site, and of a whole pattern) and the
    regularizers' (their functions and their modules' constructors)."""
    calls: dict[str, int] = {}
    monkeypatch.setattr(SearchSpace, "_checked", counted(SearchSpace._checked, calls, "site"))
    monkeypatch.setattr(SearchSpace, "validate", counted(SearchSpace.validate, calls, "validate"))
    for module, name, cls in ((pattern_conv, "check_conv_pattern", pattern_conv.ConvPatternDropout),
                              (pattern_transformer, "check_transformer_pattern",
                               pattern_transformer.TransformerPatternDropout),
                              (pattern_embedding, "check_embedding_pattern",
                               pattern_embedding.EmbeddingPatternDropout)):
        check = counted(getattr(module, name), calls, name)
        monkeypatch.setattr(module, name, check)
        monkeypatch.setattr(cls, "check", staticmethod(check))
    return calls


def test_a_trial_build_checks_each_site_once_where_the_config_enters(checks):
    task = build_task(EXPERIMENT.task)
    config = json.loads(json.dumps(trial_for_tokens(EXPERIMENT.task, CONV, CONV.sample(3), 0).to_config()))
    checks.clear()
    trial = Trial.from_config(config)  # what the trainable does, then it builds the model
    model = task.build_model(trial.regularization)
    assert checks == {"site": CONV.num_sites}  # once per site, against the space; the modules trust it
    sites = [m for m in model.modules() if isinstance(m, pattern_conv.ConvPatternDropout)]
    assert sorted(id(m.pattern) for m in sites) == sorted(id(layer) for layer in trial.regularization.pattern.layers)


def test_site_factories_trust_a_spaces_pattern_and_check_a_hand_made_list(checks):
    conv, lm = CONV.decode(CONV.sample(0)), LM.decode(LM.sample(0))
    checks.clear()
    built = [make() for make in pattern_conv.conv_site_factories(conv)]
    built += [make() for site in pattern_transformer.transformer_site_factories(lm) for make in site.values()]
    built += [make() for make in pattern_embedding.embedding_site_factories(lm) if make is not None]
    assert checks == {} and all(m.pattern is not None for m in built)
    pattern_conv.conv_site_factories(list(conv.layers))
    pattern_transformer.transformer_site_factories(list(lm.layers))
    pattern_embedding.embedding_site_factories(list(lm.embeddings))
    assert checks == {"check_conv_pattern": 3, "check_transformer_pattern": 2, "check_embedding_pattern": 1}
