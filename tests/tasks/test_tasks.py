"""Every embedded task trains for a short run, improves over the untrained model, and is seeded."""
import copy
import dataclasses
import json
import math

import pytest
import torch

import autodropout as ad
from autodropout.commands.cli import main
from autodropout.core.errors import ConfigError, PatternError
from autodropout.search_spaces import ConvSpace, TransformerSpace
from autodropout.search_spaces.transformer import EmbeddingValues
from autodropout.tasks import DivergedError, Regularization, TrainConfig, build_task, reward
from autodropout.tasks.language_model import LanguageModelConfig
from autodropout.tasks.translation import TranslationConfig
from autodropout.tasks.vision import VisionConfig


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUTODROPOUT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny_vision(**train):
    return VisionConfig(image_size=8, depth=10, width=1,
                        train=TrainConfig(epochs=2, batch_size=64, lr=0.05, **train))


def tiny_lm(**train):
    return LanguageModelConfig(vocab_size=500, max_tokens=6000, bptt=16, d_model=32, n_layers=2, n_heads=2,
                               train=TrainConfig(epochs=2, batch_size=16, optimizer="adamw", lr=3e-3,
                                                 weight_decay=0.01, grad_clip=1.0, **train))


def tiny_translation(**train):
    return TranslationConfig(max_number=999, n_train=400, n_val=50, n_test=50, d_model=32, n_enc_layers=1,
                             n_dec_layers=1, n_heads=2,
                             train=TrainConfig(epochs=6, batch_size=32, optimizer="adamw", lr=3e-3,
                                               weight_decay=0.0, grad_clip=1.0, **train))


CONFIGS = {"vision": tiny_vision, "language_model": tiny_lm, "translation": tiny_translation}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_short_training_beats_the_untrained_model(kind):
    task = build_task(CONFIGS[kind]())
    torch.manual_seed(0)
    untrained = task.evaluate(task.build_model(Regularization()), "val")
    result = task.fit(progress=False)
    trained = result.final.val
    better = (lambda a, b: a > b) if task.mode == "max" else (lambda a, b: a < b)
    if task.metric == "bleu":  # BLEU of an untrained model is ~0; compare the loss, which always moves
        assert trained["loss"] < untrained["loss"] * 0.8
    else:
        assert better(trained[task.metric], untrained[task.metric] * (1.2 if task.mode == "max" else 0.8))
    assert result.final.reward == pytest.approx(task.reward(trained[task.metric]))
    test = task.evaluate(result.model, "test")
    assert set(test) >= {task.metric, "loss"}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_site_count_matches_the_search_space(kind):
    task = build_task(CONFIGS[kind]())
    space = task.search_space()
    assert isinstance(space, ConvSpace if kind == "vision" else TransformerSpace)
    assert space.num_sites == task.num_sites
    # Embedding sites: the LM's one (token + position), translation's source and target, none in a ConvNet.
    assert space.num_embeddings == task.num_embeddings == {"vision": 0, "language_model": 1, "translation": 2}[kind]
    pattern = space.decode(space.sample(0))
    model = task.build_model(Regularization(pattern=pattern))
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("ConvPatternDropout" if kind == "vision" else "TransformerPatternDropout") in kinds or not any(
        getattr(layer, "sublayers", True) for layer in pattern.layers)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_training_is_seeded_and_resumable(kind):
    task = build_task(CONFIGS[kind](max_batches_per_epoch=4))
    space = task.search_space()
    reg = Regularization(pattern=space.decode(space.sample(1)))
    states = []
    # The state holds live tensors (a checkpoint writes it at once); keep a copy.
    full = task.fit(reg, on_epoch=lambda record, state: states.append(copy.deepcopy(state())), progress=False)
    again = task.fit(reg, progress=False)
    assert [r.metric for r in full.history] == [r.metric for r in again.history]
    resumed = task.fit(reg, resume_state=states[0], progress=False)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in full.history]
    assert resumed.final.metric == full.final.metric
    other = task.fit(reg, seed=5, progress=False)
    assert [r.train_loss for r in other.history] != [r.train_loss for r in full.history]


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_every_site_regularizer_trains_every_task(kind):
    task = build_task(CONFIGS[kind](max_batches_per_epoch=2))
    layout = "conv" if kind == "vision" else "seq"
    names = [n for n in ad.regularizers.available()
             if layout in ad.regularizers.info(n).input_kinds and not n.endswith("_pattern")]
    assert "ydrop" in names and "dropout" in names
    for name in names:
        info = ad.regularizers.info(name)
        # Site channels come from the model (TargetDrop builds its attention from them); Y-Drop
        # runs its conductance estimation from the first step (no warm-up).
        params = {k: v for k, v in info.example_params.items() if k not in ("channels", "warmup_steps")}
        result = task.fit(Regularization(name=name, params=params), epochs=1, progress=False)
        assert math.isfinite(result.final.train_loss), name


def test_layer_wrappers_patterns_and_unknown_parameters_are_refused_at_sites():
    with pytest.raises(ValueError, match="wraps a layer"):
        Regularization(name="dropconnect", params={"p": 0.1})
    with pytest.raises(ValueError, match="'conv_pattern' is a learned pattern: give a pattern file"):
        Regularization(name="conv_pattern")
    with pytest.raises(ValueError, match="'dropblock' has no parameter 'size'; parameters: p, block_size"):
        Regularization(name="dropblock", params={"size": 3})


def test_divergence_is_an_error_not_a_reward():
    task = build_task(tiny_vision(max_batches_per_epoch=3))
    task.config = dataclasses.replace(task.config, train=dataclasses.replace(task.config.train, lr=math.inf))
    with pytest.raises(DivergedError, match="non-finite training loss"):
        task.fit(progress=False)


def test_reward_transform():
    assert reward("accuracy", 0.93) == 0.93
    assert reward("perplexity", 80.0) == 1.0
    assert reward("perplexity", 160.0, constant=40.0) == 0.25
    assert reward("bleu", 40.0) == 0.4
    assert math.isnan(reward("perplexity", math.inf)) and math.isnan(reward("accuracy", math.nan))
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        reward("f1", 0.5)


def test_train_command_writes_metrics(tmp_path, capsys):
    from tests.tiny import write_experiment

    path = write_experiment(tmp_path)
    out = tmp_path / "metrics.json"
    code = main(["train", str(path), "--regularizer", "dropblock", "--param", "p=0.1", "--param", "block_size=3",
                 "--epochs", "1", "--seed", "2", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "dropblock(p=0.1, block_size=3)" in printed and "test:" in printed
    report = json.loads(out.read_text())
    assert report["seed"] == 2 and report["epochs"] == 1
    assert 0 <= report["val"]["accuracy"] <= 1 and 0 <= report["test"]["accuracy"] <= 1


def test_train_with_a_pattern_file_maps_sites_and_checks_kind(tmp_path, capsys):
    from tests.tiny import write_experiment

    path = write_experiment(tmp_path)
    space = ConvSpace(12)  # a WRN-28 pattern onto the 3-site WRN-10
    ad.save_patterns(tmp_path / "p.json", [space.decode(space.sample(0))], space)
    assert main(["train", str(path), "--pattern", str(tmp_path / "p.json"), "--epochs", "1"]) == 0
    assert "learned conv pattern (3 sites)" in capsys.readouterr().out
    lm_space = TransformerSpace(2)
    ad.save_patterns(tmp_path / "lm.json", [lm_space.decode(lm_space.sample(0))], lm_space)
    assert main(["train", str(path), "--pattern", str(tmp_path / "lm.json")]) == 2
    assert "a transformer pattern cannot be applied to a conv model" in capsys.readouterr().err


def test_vision_task_trains_on_noisy_labels_and_scores_clean_ones():
    clean = build_task(tiny_vision())
    noisy = build_task(dataclasses.replace(tiny_vision(), label_noise=0.3))
    flipped = (noisy.data.train.y != clean.data.train.y).float().mean().item()
    assert flipped == pytest.approx(0.3, abs=1 / len(clean.data.train))
    assert torch.equal(noisy.data.val.y, clean.data.val.y) and torch.equal(noisy.data.test.y, clean.data.test.y)


def test_translation_task_trains_on_noisy_targets_and_scores_clean_ones():
    clean = build_task(tiny_translation())
    noisy = build_task(dataclasses.replace(tiny_translation(), label_noise=0.25))
    changed = sum(a != b for a, b in zip(noisy.data.train.tgt_text, clean.data.train.tgt_text))
    assert changed == round(0.25 * len(clean.data.train))
    assert noisy.data.train.src_text == clean.data.train.src_text
    assert noisy.data.val == clean.data.val and noisy.data.test == clean.data.test


@pytest.mark.parametrize("config", [VisionConfig, TranslationConfig])
def test_label_noise_outside_0_1_is_a_config_error_naming_the_field(config):
    with pytest.raises(ConfigError, match=r"label_noise: expected a fraction in \[0, 1\), got 1.0"):
        config(label_noise=1.0)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_second_moment_decay_comes_from_the_config(optimizer):
    from autodropout.tasks.loop import _optimizer

    model = torch.nn.Linear(3, 2)
    groups = _optimizer(model, TrainConfig(optimizer=optimizer, lr=1e-3, beta2=0.98)).param_groups
    assert [g["betas"] for g in groups] == [(0.9, 0.98)] * 2
    assert _optimizer(model, TrainConfig(optimizer=optimizer, lr=1e-3)).param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(ConfigError, match=r"beta2: expected a fraction in \(0, 1\), got 1.0"):
        TrainConfig(optimizer=optimizer, beta2=1.0)


def test_train_reports_the_epochs_trained_not_the_validations(tmp_path, capsys):
    from tests.tiny import write_experiment

    path = write_experiment(tmp_path, {"task": {"train": {"epochs": 4, "eval_every": 2, "batch_size": 64, "lr": 0.05,
                                                          "max_batches_per_epoch": 2}}})
    assert main(["train", str(path), "--output", str(tmp_path / "report.json")]) == 0
    assert "(seed 0, 4 epochs," in capsys.readouterr().out  # 2 validations, 4 epochs
    assert json.loads((tmp_path / "report.json").read_text())["epochs"] == 4


def test_embedding_patterns_go_after_the_embeddings_and_nothing_without_them():
    from autodropout.models import TransformerLM, TransformerSeq2Seq
    from autodropout.regularizers.pattern_embedding import EmbeddingPatternDropout
    from autodropout.search_spaces import EmbeddingPattern, Pattern

    space = TransformerSpace(2, num_embeddings=2)
    layers = space.decode(space.sample(0)).layers
    token, off = EmbeddingPattern("token", 1, 8, 1, "bernoulli"), space.off_embedding()
    layout = TransformerSeq2Seq.site_layout(1, 1)
    sites = Regularization(pattern=Pattern("transformer", layers, (token, off))).model_sites(layout)
    source, target = sites["embedding_dropout"]
    assert isinstance(source(), EmbeddingPatternDropout) and source().pattern == token and target is None
    model = TransformerSeq2Seq(20, 20, 16, 1, 1, 2, embedding_dropout=sites["embedding_dropout"])
    assert isinstance(model.src_embed.site, EmbeddingPatternDropout) and model.tgt_embed.site is None
    # A pattern without embedding patterns (a version-2 file) puts nothing there, as before.
    assert Regularization(pattern=Pattern("transformer", layers)).model_sites(layout)["embedding_dropout"] is None
    # A registry regularizer still goes after every embedding.
    assert Regularization(name="dropout", params={"p": 0.1}).model_sites(layout)["embedding_dropout"]().p == 0.1
    with pytest.raises(ValueError, match="pattern has 2 embedding sites, the model has 1"):
        Regularization(pattern=Pattern("transformer", layers, (token, off))).model_sites(TransformerLM.site_layout(2))
    described = Regularization(pattern=Pattern("transformer", layers, (token, off))).describe()
    assert described == "learned transformer pattern (2 sites and 2 embedding sites)"


def test_search_values_and_embedding_values_set_the_space():
    from autodropout.runs.experiment import experiment_from_dict
    from tests.tiny import TINY_LM, TINY_VISION

    experiment = experiment_from_dict({**TINY_LM, "search": {"values": {"span": [1, "all"]},
                                                            "embedding_values": {"unit": ["off", "token"]}}})
    task = build_task(experiment.task)
    space = task.search_space(experiment.search.values, experiment.search.embedding_values)
    assert space.values.span == (1, "all") and space.embedding_values.unit == ("off", "token")
    assert space.embedding_values.size == EmbeddingValues().size  # the keys not given keep their defaults
    assert space.num_embeddings == task.num_embeddings == 1
    with pytest.raises(PatternError, match="search.embedding_values: unknown key 'rate'"):
        task.search_space(embedding_values={"rate": [0.1]})
    with pytest.raises(PatternError, match="search.values.span: expected a non-empty list"):
        task.search_space({"span": []})
    vision = build_task(experiment_from_dict(TINY_VISION).task)
    with pytest.raises(PatternError, match="search.embedding_values: this task's model has no embedding sites"):
        vision.search_space(embedding_values={"unit": ["off"]})
