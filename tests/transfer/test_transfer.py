"""``autodropout transfer`` end to end on the embedded tasks (tiny settings, sequential), the LM ->
translation mapping in the built model, the report files, and the errors raised before training."""
import csv
import json
import math

import matplotlib.image
import numpy
import pytest
import torch

from autodropout.commands import cli
from autodropout.commands.transfer import (
    MethodSummary,
    RunRecord,
    TransferError,
    TransferReport,
    baseline_methods,
    parse_baseline,
    run_transfer,
    valid_baselines,
    write_report,
)
from autodropout.commands.transfer import _summaries as method_summaries
from autodropout.runs import Trial
from autodropout.runs.experiment import find_experiment
from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    Pattern,
    PatternError,
    TransformerLayerPattern,
    TransformerSpace,
    pattern_json,
    save_patterns,
)
from autodropout.tasks import Regularization, build_task
from autodropout.tasks.mapped_pattern import pattern_for_task
from autodropout.tasks.translation import TranslationTask

TRANSLATION_YAML = """\
name: tiny_translation
task:
  kind: translation
  dataset: numbers
  max_number: 999
  n_train: 256
  n_val: 32
  n_test: 32
  max_len: 16
  d_model: 32
  n_enc_layers: 2
  n_dec_layers: 3
  n_heads: 2
  train: {epochs: 1, batch_size: 32, max_batches_per_epoch: 3, device: cpu}
"""

VISION_YAML = """\
name: tiny_digits
task:
  kind: vision
  dataset: digits
  image_size: 8
  depth: 10
  width: 1
  train: {epochs: 1, batch_size: 32, max_batches_per_epoch: 2, device: cpu, lr: 0.05}
"""


def lm_layer(size: int, query: bool, ffn_hidden: bool) -> TransformerLayerPattern:
    return TransformerLayerPattern(query=query, key=False, value=True, attn_output=False, ffn_hidden=ffn_hidden,
                                   ffn_output=True, size=size, stride=4, span=2, share_heads=False, noise="bernoulli")


#: A 2-layer language-model pattern whose layers differ (size and switches) so the mapping shows.
LM_PATTERN = Pattern("transformer", (lm_layer(1, query=True, ffn_hidden=False),
                                     lm_layer(4, query=False, ffn_hidden=True)))
CONV_PATTERN = Pattern("conv", (ConvLayerPattern(unit="tile", rate=None, size=(2, 2), stride=1, repeat=2, rotate=0,
                                                 shear_x=0.0, shear_y=0.0, share_c=True, residual=True),))


@pytest.fixture
def lm_file(tmp_path):
    return save_patterns(tmp_path / "lm_patterns.json", [LM_PATTERN], TransformerSpace(2),
                         source={"experiment": "lm_transformer_quick"})


@pytest.fixture
def conv_file(tmp_path):
    return save_patterns(tmp_path / "conv_patterns.json", [CONV_PATTERN], ConvSpace(1))


@pytest.fixture
def translation_yaml(tmp_path):
    path = tmp_path / "tiny_translation.yaml"
    path.write_text(TRANSLATION_YAML)
    return path


@pytest.fixture
def vision_yaml(tmp_path):
    path = tmp_path / "tiny_digits.yaml"
    path.write_text(VISION_YAML)
    return path


def test_lm_pattern_maps_onto_encoder_and_decoder_with_cross_attention(lm_file, translation_yaml):
    task = build_task(find_experiment(translation_yaml).task)
    mapped = pattern_for_task(task, lm_file)
    # 2 LM layers -> 2 encoder layers (identity) and 3 decoder layers (depth_map(2, 3) = [0, 1, 1]).
    assert mapped.layers == LM_PATTERN.layers[:2] + (LM_PATTERN.layers[0],) + LM_PATTERN.layers[1:] * 2
    model = task.build_model(Regularization(pattern=mapped))
    for layer, pattern in zip(model.encoder, mapped.layers[:2]):
        assert set(layer.attn.sites) | set(layer.sites) == set(pattern.sublayers)
        assert layer.cross_attn is None
    for layer, pattern in zip(model.decoder, mapped.layers[2:]):
        attention = {n for n in pattern.sublayers if n in ("query", "key", "value", "attn_output")}
        assert set(layer.attn.sites) == attention
        assert set(layer.cross_attn.sites) == attention  # cross-attention follows the layer's switches
        assert set(layer.sites) == {n for n in pattern.sublayers if n.startswith("ffn")}
        assert layer.attn.sites["value"].pattern.size == pattern.size


def test_transfer_lm_pattern_to_translation_end_to_end(lm_file, translation_yaml, tmp_path, capsys):
    out = tmp_path / "report"
    report = run_transfer(lm_file, translation_yaml, baselines=["none", "dropout:p=0.2"], seeds=2, output=out,
                          parallel=False)
    assert [m.method for m in report.methods] == ["pattern", "none", "dropout(p=0.2)"]
    assert report.seeds == [0, 1] and len(report.runs) == 6 and not any(r.error for r in report.runs)
    assert report.mapping == ("transformer, 2 sites -> 5 sites by relative depth: encoder layers <- source sites "
                              "[0, 1], decoder layers <- [0, 1, 1] (cross-attention follows its decoder layer)")
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.json", "report.md", "report.png"]

    document = json.loads((out / "report.json").read_text())
    assert document["format"] == "autodropout.commands.transfer" and document["metric"] == "bleu"
    assert document["mode"] == "max" and document["epochs"] == 1
    pattern_row = document["methods"][0]
    values = [r["val"]["bleu"] for r in document["runs"] if r["method"] == "pattern"]
    assert pattern_row["val"]["values"] == values and pattern_row["val"]["mean"] == pytest.approx(sum(values) / 2)
    for m in document["methods"]:
        for split in ("val", "test"):
            v = m[split]["values"]
            assert len(v) == 2 and all(math.isfinite(x) for x in v)
            assert m[split]["se"] == pytest.approx(abs(v[0] - v[1]) / 2)  # s = |a - b| / sqrt(2), se = s / sqrt(2)
            assert m[split]["n"] == 2 and len(m[split]["ci95"]) == 2
    assert [(c["arm"], c["reference"], c["n"]) for c in document["comparisons"]] == [
        ("pattern", "none", 2), ("pattern", "dropout(p=0.2)", 2)]

    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [(r["method"], r["seed"]) for r in rows] == [
        (m, s) for m in ("pattern", "none", "dropout(p=0.2)") for s in ("0", "1")]
    assert {"val_bleu", "val_loss", "test_bleu", "test_exact_match"} <= set(rows[0])
    assert float(rows[0]["test_loss"]) == pytest.approx(report.runs[0].test["loss"])
    # Different seeds train different models: the validation losses differ.
    assert rows[0]["val_loss"] != rows[1]["val_loss"]

    markdown = (out / "report.md").read_text()
    assert "| method | val bleu (mean ± SE) | test bleu (mean ± SE) | 95% CI |" in markdown
    assert "| arm | reference | difference (mean ± SE) | 95% CI | verdict |" in markdown
    # The LM pattern has no embedding patterns: "off" at both embeddings.
    assert "| dropout(p=0.2) |" in markdown
    assert "learned transformer pattern (5 sites and 2 embedding sites)" in markdown
    assert report.text().startswith(markdown.rstrip("\n"))
    pixels = matplotlib.image.imread(out / "report.png")
    assert pixels.min() < pixels.max() and len(numpy.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 2
    assert "[6/6] dropout(p=0.2) seed 1: validation bleu" in capsys.readouterr().err


def test_transfer_one_site_conv_pattern_to_digits(conv_file, vision_yaml, tmp_path):
    report = run_transfer(conv_file, vision_yaml, baselines=["dropblock:p=0.1;block_size=3"], seeds=1,
                          output=tmp_path / "out", parallel=False, progress=False)
    assert report.mapping == "conv, 1 site -> 3 sites by relative depth: source sites [0, 0, 0]"
    assert report.pattern.layers == CONV_PATTERN.layers * 3
    assert [m.method for m in report.methods] == ["pattern", "dropblock(p=0.1, block_size=3)"]
    for m in report.methods:
        assert len(m.val) == 1 and 0 <= m.val[0] <= 1 and m.val_summary.se is None
    assert "± " not in report.markdown().split("|---")[1]  # one seed: no spread to show


def test_cli_transfer(lm_file, translation_yaml, tmp_path, capsys, monkeypatch):
    def no_ray():
        raise AssertionError("--sequential must not start Ray")

    monkeypatch.setattr("autodropout.tune.parallel.run_grid", no_ray)
    out = tmp_path / "cli"
    code = cli.main(["transfer", str(lm_file), "--to", str(translation_yaml), "--baselines", "none",
                     "--seeds", "1", "--epochs", "1", "--output", str(out), "--sequential"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "# Transfer: lm_patterns.json (rank 1) -> tiny_translation" in printed
    assert f"written to {out}/" in printed and (out / "report.json").exists()


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(TranslationTask, "fit", fail)
    monkeypatch.setattr("autodropout.tasks.vision.VisionTask.fit", fail)


def test_conv_pattern_for_transformer_task_fails_before_training(conv_file, translation_yaml, tmp_path, no_training):
    with pytest.raises(PatternError, match="a conv pattern cannot be applied to a transformer model"):
        run_transfer(conv_file, translation_yaml, output=tmp_path / "out", parallel=False)
    assert not (tmp_path / "out").exists()


def test_transformer_pattern_for_vision_task_fails_before_training(lm_file, vision_yaml, tmp_path, no_training,
                                                                   capsys):
    with pytest.raises(PatternError, match="a transformer pattern cannot be applied to a conv model"):
        run_transfer(lm_file, vision_yaml, output=tmp_path / "out", parallel=False)
    assert cli.main(["transfer", str(lm_file), "--to", str(vision_yaml)]) == 2
    assert "autodropout: error: a transformer pattern cannot be applied" in capsys.readouterr().err


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(baselines=["dropblock"]), "baseline 'dropblock' is not usable on a translation task; valid baselines: "
                                    "none, concrete_dropout, dropout, droppath, sparseout, spatial_dropout, "
                                    "variational_dropout, ydrop"),
    (dict(baselines=["pattern"]), "baseline 'pattern' is not usable"),
    (dict(baselines=["dropout:p=2"]), r"baseline 'dropout:p=2': p must be a probability in \[0, 1\), got 2"),
    (dict(baselines=["none:p=1"]), "baseline 'none' takes no parameters"),
    (dict(baselines=["dropout", "none", "dropout"]), "baseline 'dropout' is listed twice"),
    (dict(baselines=["dropout:p"]), "baseline 'dropout:p': expected name:key=value;key=value, got 'p'"),
    (dict(seeds=0), "seeds: expected a positive number of seeds, got 0"),
    (dict(epochs=0), "epochs: expected a positive number of epochs, got 0"),
    (dict(rank=2), r"rank: no pattern of rank 2; ranks in file: \[1\]"),
])
def test_user_errors_before_training(lm_file, translation_yaml, tmp_path, no_training, kwargs, message):
    with pytest.raises(TransferError, match=message):
        run_transfer(lm_file, translation_yaml, output=tmp_path / "out", parallel=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_key_error_while_mapping_a_valid_rank_is_a_bug_not_a_bad_rank(lm_file, translation_yaml, tmp_path,
                                                                        no_training, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("decoder")

    monkeypatch.setattr("autodropout.commands.transfer.pattern_onto_task", broken)
    with pytest.raises(KeyError, match="decoder") as caught:
        run_transfer(lm_file, translation_yaml, output=tmp_path / "out", parallel=False)
    assert not isinstance(caught.value, TransferError)


def test_the_pattern_file_is_read_once(lm_file, translation_yaml, tmp_path, no_training, monkeypatch):
    reads = []
    parse = pattern_json.parse_patterns
    monkeypatch.setattr(pattern_json, "parse_patterns", lambda document: reads.append(1) or parse(document))
    with pytest.raises(AssertionError, match="training started"):  # everything before training has run
        run_transfer(lm_file, translation_yaml, output=tmp_path / "out", parallel=False)
    assert len(reads) == 1


def test_output_folder_must_be_new_or_empty(lm_file, translation_yaml, tmp_path, no_training):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "report.md").write_text("old")
    with pytest.raises(TransferError, match="exists and is not an empty folder"):
        run_transfer(lm_file, translation_yaml, output=tmp_path / "used", parallel=False)


def test_baselines_parse_and_fit_the_task():
    assert parse_baseline("dropblock:p=0.1;block_size=3") == ("dropblock(p=0.1, block_size=3)", "dropblock",
                                                              {"p": 0.1, "block_size": 3})
    assert parse_baseline(" none ") == ("none", "none", {})
    assert parse_baseline("dropblock:per_channel=false;mode=x") == (
        "dropblock(per_channel=False, mode=x)", "dropblock", {"per_channel": False, "mode": "x"})
    assert "dropblock" in valid_baselines("vision") and "dropblock" not in valid_baselines("language_model")
    assert not {"dropconnect", "conv_pattern", "transformer_pattern"} & set(valid_baselines("vision"))
    with pytest.raises(TransferError, match="baseline 'targetdrop:gamma=0.2': regularizer 'targetdrop'.*channels"):
        baseline_methods(["targetdrop:gamma=0.2"], "vision")
    methods = baseline_methods(["none", "dropout:p=0.1"], "vision")
    assert [(label, r.name, dict(r.params)) for label, r in methods] == [
        ("none", None, {}), ("dropout(p=0.1)", "dropout", {"p": 0.1})]


def report_with(methods, runs, mode="max"):
    return TransferReport(patterns_file="p.json", rank=1, target="t", task_kind="vision", metric="accuracy", mode=mode,
                          epochs=3, seeds=[0, 1, 2], mapping="conv, 3 sites -> 3 sites, used as is",
                          pattern=CONV_PATTERN, methods=methods, runs=runs, parallel=False, seconds=1.0)


def test_summary_statistics_and_failed_runs():
    a = MethodSummary("pattern", "learned", 3, 0, [0.5, 0.7, 0.9], [0.4, 0.6, 0.8])
    b = MethodSummary("none", "none", 3, 1, [0.6, 0.8], [0.9, 0.9])
    assert a.val_mean == pytest.approx(0.7) and a.val_summary.se == pytest.approx(0.2 / math.sqrt(3))
    assert b.test_summary.se == 0.0
    runs = [RunRecord("none", 2, None, None, 0.5, "non-finite training loss nan at epoch 1, step 3")]
    report = report_with([a, b], runs)
    assert report.best("test") == ["none"] and report.best("val") == ["pattern", "none"]
    assert report_with([a, b], runs, mode="min").best("test") == ["pattern"]
    text = report.markdown()
    # se = 0.2 / sqrt(3) = 0.11547; half width t(0.975, 2) * se = 4.302653 * 0.11547 = 0.49683
    assert ("| pattern | 0.7000 ± 0.12 | 0.6000 ± 0.12 | [0.1032, 1.097] | 0.5000, 0.7000, 0.9000 "
            "| 0.4000, 0.6000, 0.8000 | learned |") in text
    assert "| none (1 failed) | 0.7000 ± 0.10 | 0.9000 ± 0 | [0.9000, 0.9000] |" in text
    assert "Paired test differences" not in text  # no run of both succeeded
    assert "Best mean test accuracy: **none**." in text
    assert "- none seed 2: non-finite training loss nan at epoch 1, step 3" in text
    assert report.csv().splitlines() == ["method,seed,status,seconds", "none,2,error,0.50"]
    assert report.to_json()["runs"][0]["error"].startswith("non-finite")


def test_the_transfer_report_speaks_like_the_study():
    # Test accuracy per seed 0, 1, 2: pattern 1, 2, 3 -> mean 2, s = 1, se = 1 / sqrt(3) = 0.577350,
    # half width t(0.975, 2) * se = 4.302653 * 0.577350 = 2.484138; none 0.5, 1.0, 2.5 -> pattern - none
    # per seed 0.5, 1.0, 0.5: mean 0.666667, s = 0.288675, se = 0.166667, half width 0.717109.
    pattern, none = [1.0, 2.0, 3.0], [0.5, 1.0, 2.5]
    runs = [RunRecord(method, seed, {"accuracy": value}, {"accuracy": value}, 1.0)
            for method, values in (("pattern", pattern), ("none", none)) for seed, value in enumerate(values)]
    report = report_with([MethodSummary("pattern", "learned", 3, 0, pattern, pattern),
                          MethodSummary("none", "none", 3, 0, none, none)], runs)
    test = report.to_json()["methods"][0]["test"]
    assert (test["n"], test["mean"], test["values"]) == (3, 2.0, pattern)
    assert test["se"] == pytest.approx(0.577350, abs=1e-6)
    assert test["ci95"] == [pytest.approx(2 - 2.484138, abs=1e-6), pytest.approx(2 + 2.484138, abs=1e-6)]
    (comparison,) = report.to_json()["comparisons"]
    assert (comparison["arm"], comparison["reference"], comparison["n"]) == ("pattern", "none", 3)
    assert comparison["mean"] == pytest.approx(0.666667, abs=1e-6)
    assert comparison["se"] == pytest.approx(0.166667, abs=1e-6)
    assert comparison["ci95"] == [pytest.approx(0.666667 - 0.717109, abs=1e-6),
                                  pytest.approx(0.666667 + 0.717109, abs=1e-6)]
    text = report.markdown()
    assert "| pattern | 2.000 ± 0.58 | 2.000 ± 0.58 | [-0.4841, 4.484] | 1.000, 2.000, 3.000 |" in text
    assert "| pattern | none | +0.667 ± 0.17 | [-0.0504, +1.38] | no difference at 95% |" in text


def test_a_run_with_a_non_finite_metric_counts_as_failed_and_the_json_stays_valid(tmp_path):
    runs = [RunRecord("pattern", 0, {"accuracy": 0.5}, {"accuracy": float("nan")}, 1.0),
            RunRecord("pattern", 1, {"accuracy": 0.6}, {"accuracy": 0.7}, 1.0)]
    (summary,) = method_summaries([Trial(None, Regularization.none(), 0, None, "pattern")], runs, "accuracy")
    assert (summary.runs, summary.failed, summary.test) == (2, 1, [0.7])
    write_report(report_with([summary], runs), tmp_path)
    document = json.loads((tmp_path / "report.json").read_text())  # strict: no NaN
    assert document["runs"][0]["test"] == {"accuracy": None} and document["methods"][0]["test"]["se"] is None


@pytest.mark.slow
def test_parallel_on_ray_matches_sequential(lm_file, translation_yaml, tmp_path, monkeypatch):
    kwargs = dict(baselines=["none"], seeds=1, progress=False)
    # As on a user's machine: no OMP_NUM_THREADS, torch at its default of several threads (this
    # suite pins 1 thread in conftest.py). Both paths must still train with train.threads, which
    # defaults to the trial's CPUs (search.cpus_per_trial = 1).
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(4)
    try:
        sequential = run_transfer(lm_file, translation_yaml, output=tmp_path / "seq", parallel=False, **kwargs)
        assert torch.get_num_threads() == 1  # set by the training loop from train.threads
        on_ray = run_transfer(lm_file, translation_yaml, output=tmp_path / "ray", parallel=True, **kwargs)
    finally:
        torch.set_num_threads(1)
    assert on_ray.parallel and not sequential.parallel
    # Same trainer code, seeds, data and thread count: the very same models, so the very same metrics.
    for a, b in zip(sequential.runs, on_ray.runs):
        assert (a.method, a.seed) == (b.method, b.seed)
        assert a.val == b.val and a.test == b.test
