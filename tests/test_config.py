import dataclasses
import math

import pytest

from autodropout.controller.config import ControllerConfig
from autodropout.core.errors import ConfigError
from autodropout.runs.experiment import (
    CONTROLLER_KEYS,
    SearchConfig,
    experiment_from_dict,
    find_experiment,
    load_experiment,
    presets,
)
from autodropout.tasks.language_model import LanguageModelConfig


def test_presets_load_and_validate():
    names = presets()
    assert {"digits_wrn_quick", "lm_transformer_quick", "translation_numbers_quick",
            "cifar10_wrn28_2_search", "cifar10_wrn28_10_final", "ptb_transformer_search",
            "wikitext2_transformer_search", "wmt14_enfr_transformer_base"} <= set(names)
    for name in names:
        assert find_experiment(name).name == name


def test_paper_scale_shapes():
    search = find_experiment("cifar10_wrn28_2_search")
    assert (search.task.depth, search.task.width, search.task.val_fraction) == (28, 2, 0.1)
    assert find_experiment("cifar10_wrn28_10_final").task.width == 10
    wmt = find_experiment("wmt14_enfr_transformer_base").task
    assert (wmt.d_model, wmt.n_enc_layers, wmt.n_dec_layers, wmt.n_heads, wmt.d_ff) == (512, 6, 6, 8, 2048)


def test_partial_train_section_keeps_the_task_defaults():
    experiment = experiment_from_dict({"task": {"kind": "language_model", "train": {"epochs": 7}}})
    default = LanguageModelConfig().train
    assert experiment.task.train.epochs == 7
    assert (experiment.task.train.optimizer, experiment.task.train.lr) == (default.optimizer, default.lr)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": {"kind": "vision", "lrr": 1}}, "task.lrr: unknown key"),
        ({"task": {"kind": "vision", "train": {"epochs": "x"}}}, "task.train.epochs: expected an integer"),
        ({"task": {"kind": "vision", "train": {"epochs": 0}}}, "task.train.epochs: expected a positive value"),
        ({"task": {"kind": "vision", "train": {"optimizer": "lion"}}}, "task.train.optimizer: expected one of"),
        ({"task": {"kind": "vision", "augment": "yes"}}, "task.augment: expected true or false"),
        ({"task": {"kind": "vision", "dataset": "cifar10"}}, "task.root: dataset 'cifar10' needs root"),
        ({"task": {"kind": "language_model", "d_model": 30, "n_heads": 4}}, "task.d_model: 30 is not divisible"),
        ({"task": {"kind": "rnn"}}, "task.kind: expected one of"),
        ({"task": {"kind": "vision"}, "search": {"concurency": 2}}, "search.concurency: unknown key"),
        ({"task": {"kind": "vision"}, "search": {"baseline_decay": 1.0}}, "search.baseline_decay"),
        ({"task": {"kind": "vision"}, "search": {"controller_lr": 0}},
         "search.controller_lr: must be a finite number > 0"),
        ({"task": {"kind": "vision"}, "search": {"clip_ratio": 1.5}},
         "search.clip_ratio: must be a finite number > 0.0 and < 1.0"),
        ({"task": {"kind": "vision"}, "search": {"controller_optimizer": "rmsprop"}},
         "search.controller_optimizer: expected one of"),
        ({"task": {"kind": "vision"}, "search": {"samples_per_update": 0}},
         "search.samples_per_update: must be an int >= 1"),
        ({"task": {"kind": "vision"}, "extra": 1}, "unknown key 'extra'"),
        ({"search": {}}, "missing key 'task'"),
        ([1, 2], "expected a mapping at the top level"),
    ],
)
def test_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        experiment_from_dict(raw)


def test_the_search_section_hands_the_controller_settings_over_in_one_piece():
    assert SearchConfig().controller_config() == ControllerConfig()  # the defaults are ControllerConfig's
    # Every setting but grad_clip can be set from YAML, each under exactly one search: key.
    fields = {f.name for f in dataclasses.fields(ControllerConfig)}
    assert sorted(CONTROLLER_KEYS.values()) == sorted(fields - {"grad_clip"})
    assert set(CONTROLLER_KEYS) <= {f.name for f in dataclasses.fields(SearchConfig)}
    search = experiment_from_dict({"task": {"kind": "vision"}, "search": {
        "controller_lr": 0.004, "controller_optimizer": "sgd", "clip_ratio": None, "tanh_constant": None,
        "normalize_advantages": False, "samples_per_update": 3}}).search
    assert search.controller_config() == ControllerConfig(lr=0.004, optimizer="sgd", clip_ratio=None,
                                                          tanh_constant=None, normalize_advantages=False,
                                                          samples_per_update=3)


def test_numbers_written_as_yaml_strings_are_accepted_for_floats(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("task:\n  kind: vision\n  train:\n    lr: 5e-2\n")
    assert math.isclose(load_experiment(path).task.train.lr, 0.05)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such experiment file"):
        load_experiment(tmp_path / "missing.yaml")
    path = tmp_path / "e.yaml"
    path.write_text("task: {kind: vision, width: 0}\n")
    with pytest.raises(ConfigError, match=rf"{path}: task.width"):
        load_experiment(path)
