"""Site shapes from a task config without data (`autodropout.tasks.task_sites`) agree with the tasks'
own layouts, and `autodropout export` records them in the pattern file."""
import json

import pytest

import autodropout as ad
from autodropout.data import cifar
from autodropout.models import WideResNet
from autodropout.runs import RunDir, export_run
from autodropout.runs.experiment import experiment_from_dict, find_experiment, presets
from autodropout.tasks import build_task, task_sites
from autodropout.tasks.vision import CIFAR_SIDE
from tests.helpers import trial_for_tokens
from tests.tiny import TINY_VISION


def test_every_preset_has_site_shapes_of_its_space_and_site_count():
    for name in presets():
        task = find_experiment(name).task
        sites = task_sites(task)
        assert sites is not None and len(sites.shapes) > 0
        assert all(len(shape) == 3 and all(v >= 1 for v in shape) for shape in sites.shapes)
        assert sites.space in ("conv", "transformer")


def test_vision_shapes_match_the_built_task():
    config = find_experiment("digits_wrn_quick").task
    task = build_task(config)  # the digits load in a second
    assert task_sites(config).shapes == task.site_layout.shapes == ((32, 8, 8), (64, 4, 4), (128, 2, 2))
    assert task_sites(config).data_root is None
    # CIFAR images are read at their own size, whatever image_size says.
    assert CIFAR_SIDE == cifar._IMAGE_SIZE
    wrn = find_experiment("cifar10_wrn28_2_search").task
    assert task_sites(wrn).shapes == WideResNet.site_layout(28, 2, 32).shapes
    assert task_sites(wrn).data_root == "data/cifar-10-batches-py"


@pytest.mark.parametrize("name", ["lm_transformer_quick", "translation_numbers_quick", "ptb_transformer_search"])
def test_transformer_shapes_count_every_layer(name):
    config = find_experiment(name).task
    sites = task_sites(config)
    layers = config.n_layers if config.kind == "language_model" else config.n_enc_layers + config.n_dec_layers
    assert len(sites.shapes) == layers
    assert {shape[1:] for shape in sites.shapes} == {(config.d_model, config.n_heads)}


def test_unknown_task_kind_gives_none():
    class Other:
        kind = "speech"

    assert task_sites(Other()) is None


def test_export_records_the_site_shapes(tmp_path):
    experiment = experiment_from_dict(TINY_VISION)
    space = ad.ConvSpace(3)
    run = RunDir.create(tmp_path / "run", experiment, space, "accuracy", seed=0)
    for index, seed in enumerate((1, 2)):
        folder = run.experiment_dir / f"trial_{index}_t{index}"
        folder.mkdir(parents=True)
        trial = trial_for_tokens(experiment.task, space, space.sample(seed), seed=0)
        (folder / "params.json").write_text(json.dumps(trial.to_config()))
        (folder / "result.json").write_text(json.dumps({"accuracy": 0.5 + index / 10, "reward": 0.5 + index / 10,
                                                        "epoch": 2, "done": True}) + "\n")
    exported = export_run(run.path, top=2)
    patterns = ad.load_patterns(exported.patterns_file)
    # WRN-10-1 on 8x8 digits: 16, 32 and 64 channels at 8x8, 4x4 and 2x2.
    assert patterns.site_shapes == ((16, 8, 8), (32, 4, 4), (64, 2, 2))
    assert patterns.source["experiment"] == "tiny_vision" and len(patterns.patterns) == 2
