import json
import os
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import autodropout as ad
from autodropout.core.errors import PatternError
from autodropout.models import TransformerLM
from autodropout.regularizers.pattern_conv import conv_pattern_mask
from autodropout.regularizers.pattern_transformer import transformer_pattern_mask
from autodropout.search_spaces import (
    SUBLAYERS,
    ConvLayerPattern,
    ConvSpace,
    PatternFormatError,
    TransformerLayerPattern,
    TransformerSpace,
    TransformerValues,
)
from autodropout.search_spaces.conv import axis_density
from autodropout.tasks import Regularization


@pytest.mark.parametrize("cls", [ConvSpace, TransformerSpace])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), sites=st.integers(1, 5), n=st.integers(1, 4))
def test_json_round_trip(tmp_path_factory, cls, seed, sites, n):
    space = cls(sites)
    patterns = [(space.decode(space.sample(seed + i)), 0.1 * i) for i in range(n)]
    path = tmp_path_factory.mktemp("p") / "patterns.json"
    ad.save_patterns(path, patterns, space, source={"experiment": "unit", "metric": "val_acc"})
    loaded = ad.load_patterns(path)
    assert loaded.space == space
    assert [p.pattern for p in loaded.patterns] == [p for p, _ in patterns]
    assert [p.reward for p in loaded.patterns] == pytest.approx([r for _, r in patterns])
    assert [p.rank for p in loaded.patterns] == list(range(1, n + 1))
    assert loaded.source["experiment"] == "unit" and "created" in loaded.source
    assert [space.encode(p.pattern) for p in loaded.patterns] == [space.encode(p) for p, _ in patterns]


def _valid_document(space=None):
    space = space or ConvSpace(2)
    pattern = space.decode(space.sample(0))
    return {
        "format": "autodropout.patterns",
        "version": 3,
        "space": space.kind,
        "space_config": space.config(),
        "source": {"experiment": "x"},
        "patterns": [{"rank": 1, "reward": 0.5, "layers": pattern.to_json()}],
    }


def _write(tmp_path, doc):
    path = tmp_path / "bad.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _mutate(doc, fn):
    fn(doc)
    return doc


CASES = {
    "wrong format tag": (lambda d: d.update(format="other"), "field 'format': expected 'autodropout.patterns'"),
    "unknown version": (lambda d: d.update(version=4),
                        "field 'version': unsupported version 4 (this reader knows 2 and 3)"),
    "version as string": (lambda d: d.update(version="3"), "unsupported version '3'"),
    "version as bool": (lambda d: d.update(version=True), "unsupported version True"),
    "unknown space": (lambda d: d.update(space="rnn"), "field 'space': 'rnn'"),
    "extra top field": (lambda d: d.update(comment="hi"), "unknown field 'comment'"),
    "missing patterns": (lambda d: d.pop("patterns"), "missing field 'patterns'"),
    "empty patterns": (lambda d: d.update(patterns=[]), "'patterns': expected a non-empty list"),
    "missing layer field": (
        lambda d: d["patterns"][0]["layers"][1].pop("stride"),
        "pattern 1: site 1: missing field 'stride'",
    ),
    "extra layer field": (
        lambda d: d["patterns"][0]["layers"][0].update(dropout=0.1),
        "pattern 1: site 0: unknown field 'dropout'",
    ),
    "out of range": (
        lambda d: d["patterns"][0]["layers"][1].update(repeat=17),
        "pattern 1: site 1: field 'repeat': 17 is not one of",
    ),
    "wrong type": (
        lambda d: d["patterns"][0]["layers"][0].update(share_c="yes"),
        "pattern 1: site 0: field 'share_c': 'yes'",
    ),
    "int for bool": (
        lambda d: d["patterns"][0]["layers"][0].update(residual=0),
        "site 0: field 'residual': 0",
    ),
    "site-count mismatch": (
        lambda d: d["patterns"][0]["layers"].pop(),
        "pattern 1: has 1 sites but space_config.num_sites is 2",
    ),
    "bad rank": (lambda d: d["patterns"][0].update(rank=0), "pattern 1: field 'rank'"),
    "bad reward": (lambda d: d["patterns"][0].update(reward="high"), "pattern 1: field 'reward'"),
    "extra pattern field": (lambda d: d["patterns"][0].update(code="x"), "pattern 1: unknown field 'code'"),
    "unknown source key": (lambda d: d["source"].update(command="rm"), "source: unknown field 'command'"),
    "bad space_config": (lambda d: d["space_config"].update(num_sites=0), "num_sites"),
    "unknown values key": (lambda d: d["space_config"]["values"].update(color=[1]), "unknown key 'color'"),
    "layer not an object": (lambda d: d["patterns"][0]["layers"].__setitem__(0, [1]), "site 0: expected an object"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_files_raise_one_clear_error(tmp_path, case):
    mutate, message = CASES[case]
    path = _write(tmp_path, _mutate(_valid_document(), mutate))
    with pytest.raises(PatternFormatError) as info:
        ad.load_patterns(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_file(tmp_path):
    text = json.dumps(_valid_document())
    path = _write(tmp_path, text[: len(text) // 2])
    with pytest.raises(PatternFormatError, match=r"bad.json: not valid JSON \(truncated or corrupt\?\) at line 1"):
        ad.load_patterns(path)


def test_nan_constant_rejected(tmp_path):
    path = _write(tmp_path, json.dumps(_valid_document()).replace('"reward": 0.5', '"reward": NaN'))
    with pytest.raises(PatternFormatError, match="NaN is not allowed"):
        ad.load_patterns(path)


def test_missing_file(tmp_path):
    with pytest.raises(PatternFormatError, match="no such file"):
        ad.load_patterns(tmp_path / "nope.json")


def test_not_an_object(tmp_path):
    with pytest.raises(PatternFormatError, match="top level must be a JSON object"):
        ad.load_patterns(_write(tmp_path, "[1, 2]"))


def test_save_is_atomic_and_validates(tmp_path, monkeypatch):
    space = ConvSpace(2)
    good = space.decode(space.sample(1))
    path = tmp_path / "p.json"
    ad.save_patterns(path, [good], space)
    before = path.read_text()
    wrong = ConvSpace(3).decode(ConvSpace(3).sample(0))
    with pytest.raises(ValueError, match="pattern 1: pattern has 3 sites"):
        ad.save_patterns(path, [wrong], space)
    assert path.read_text() == before

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        ad.save_patterns(path, [good, good], space)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_non_finite_reward_is_stored_as_null(tmp_path):
    space = TransformerSpace(1)
    path = ad.save_patterns(tmp_path / "p.json", [(space.decode(space.sample(0)), float("nan"))], space)
    assert ad.load_patterns(path).patterns[0].reward is None


def test_pattern_set_get(tmp_path):
    space = ConvSpace(1)
    a, b = (space.decode(space.sample(i)) for i in (1, 2))
    loaded = ad.load_patterns(ad.save_patterns(tmp_path / "p.json", [a, b], space))
    assert loaded.get(2) == b and loaded.best == a
    with pytest.raises(KeyError, match=r"ranks in file: \[1, 2\]"):
        loaded.get(3)


def test_a_version_1_file_gets_one_clear_error_saying_how_to_make_a_new_one(tmp_path):
    # A file as version 1 wrote it (conv tiles in pixels: a 5x5 tile with stride 4 and repeat 4).
    document = _valid_document()
    document["version"] = 1
    document["space_config"]["values"].update(size=[[5, 5]], stride=[4], repeat=[4])
    for layer in document["patterns"][0]["layers"]:
        layer.update(size=[5, 5], stride=4, repeat=4)
    path = _write(tmp_path, document)
    with pytest.raises(PatternFormatError) as info:
        ad.load_patterns(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field 'version': this is a version-1 pattern file")
    assert "measured in pixels" in message and "cannot be translated faithfully" in message
    assert "`autodropout search`" in message and "`autodropout export`" in message


def test_a_file_with_an_all_off_transformer_layer_is_rejected(tmp_path):
    document = _valid_document(TransformerSpace(2))
    document["patterns"][0]["layers"][1].update(dict.fromkeys(
        ("query", "key", "value", "attn_output", "ffn_hidden", "ffn_output"), False))
    with pytest.raises(PatternFormatError, match=r"bad.json: pattern 1: site 1: every sublayer switch .* is false"):
        ad.load_patterns(_write(tmp_path, document))


def test_files_are_written_as_version_3(tmp_path):
    space = ConvSpace(1)
    path = ad.save_patterns(tmp_path / "p.json", [space.decode(space.sample(0))], space)
    assert json.loads(path.read_text())["version"] == 3


# -- source.site_shapes -------------------------------------------------------------------------------

def test_site_shapes_round_trip_and_are_optional(tmp_path):
    space = ConvSpace(3)
    pattern = space.decode(space.sample(0))
    path = ad.save_patterns(tmp_path / "p.json", [pattern], space,
                            source={"experiment": "x", "site_shapes": ((32, 16, 16), (64, 8, 8), (128, 4, 4))})
    assert json.loads(path.read_text())["source"]["site_shapes"] == [[32, 16, 16], [64, 8, 8], [128, 4, 4]]
    assert ad.load_patterns(path).site_shapes == ((32, 16, 16), (64, 8, 8), (128, 4, 4))
    # Files without them (all files written before) stay valid; None is left out, never written as null.
    plain = ad.save_patterns(tmp_path / "q.json", [pattern], space, source={"site_shapes": None})
    assert "site_shapes" not in json.loads(plain.read_text())["source"]
    assert ad.load_patterns(plain).site_shapes is None


SHAPE_CASES = {
    "wrong count": ([[32, 16, 16]], "expected a list of one shape per site (2)"),
    "not a list": ("16x16", "expected a list of one shape per site"),
    "two numbers": ([[16, 16], [16, 16]], "site 0: expected [C, H, W] (ints >= 1), got [16, 16]"),
    "a bool": ([[32, 16, 16], [True, 8, 8]], "site 1: expected [C, H, W]"),
    "a float": ([[32, 16.0, 16], [64, 8, 8]], "site 0: expected [C, H, W]"),
    "zero": ([[32, 0, 16], [64, 8, 8]], "site 0: expected [C, H, W]"),
    "one pixel": ([[32, 1, 1], [64, 8, 8]], "site 0: a 1x1 map cannot carry a pattern"),
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_bad_site_shapes_are_rejected_on_read_and_write(tmp_path, case):
    shapes, message = SHAPE_CASES[case]
    doc = _valid_document()
    doc["source"]["site_shapes"] = shapes
    with pytest.raises(PatternFormatError, match=re.escape(f"source: field 'site_shapes': {message}")):
        ad.load_patterns(_write(tmp_path, doc))
    space = ConvSpace(2)
    with pytest.raises(PatternError, match=re.escape(message)):
        ad.save_patterns(tmp_path / "out.json", [space.decode(space.sample(0))], space, source={"site_shapes": shapes})
    assert not (tmp_path / "out.json").exists()


def test_transformer_site_shapes_are_tokens_width_and_heads(tmp_path):
    doc = _valid_document(TransformerSpace(2))
    doc["source"]["site_shapes"] = [[32, 64, 4], [32, 64, 4]]
    assert ad.load_patterns(_write(tmp_path, doc)).site_shapes == ((32, 64, 4), (32, 64, 4))
    doc["source"]["site_shapes"] = [[32, 64, 5], [32, 64, 4]]
    with pytest.raises(PatternFormatError, match="site 0: hidden width 64 must be >= 2 and divisible by heads=5"):
        ad.load_patterns(_write(tmp_path, doc))


# -- version 2 files and version 3's embedding sites ---------------------------------------------------

def _pairs(sides):
    return [[h, w] for h in sides for w in sides]


# The value sets and layers as version 2 (autodropout before format version 3) wrote them.
V2_CONV_VALUES = {"size": _pairs((1, 2, 3)), "stride": [1, 2, 3], "repeat": [1, 2, 4, 8],
                  "rotate": [0, 15, 30, 45, 60, 75, 90], "shear_x": [-0.3, -0.15, 0.0, 0.15, 0.3],
                  "shear_y": [-0.3, -0.15, 0.0, 0.15, 0.3], "share_c": [False, True], "residual": [False, True]}
V2_CONV_LAYERS = [
    {"size": [1, 3], "stride": 2, "repeat": 4, "rotate": 30, "shear_x": 0.3, "shear_y": 0.0, "share_c": False,
     "residual": True},
    {"size": [3, 3], "stride": 1, "repeat": 2, "rotate": 0, "shear_x": 0.0, "shear_y": -0.15, "share_c": True,
     "residual": False},
]
V2_TRANSFORMER_VALUES = {**{name: [False, True] for name in SUBLAYERS}, "size": [1, 2, 4], "stride": [4, 8, 16],
                         "span": [1, 2, 4, 8, 16, "all"], "share_heads": [False, True],
                         "noise": ["bernoulli", "gaussian"]}
V2_TRANSFORMER_LAYERS = [
    {"query": True, "key": True, "value": True, "attn_output": False, "ffn_hidden": False, "ffn_output": True,
     "size": 4, "stride": 8, "span": 8, "share_heads": True, "noise": "gaussian"},
    {"query": False, "key": False, "value": False, "attn_output": True, "ffn_hidden": True, "ffn_output": False,
     "size": 1, "stride": 16, "span": "all", "share_heads": False, "noise": "bernoulli"},
]


def _v2_document(kind, values, layers):
    return {"format": "autodropout.patterns", "version": 2, "space": kind,
            "space_config": {"num_sites": len(layers), "values": values},
            "source": {"experiment": "old", "created": "2026-11-30T12:00:00+00:00"},
            "patterns": [{"rank": 1, "reward": 0.9, "layers": layers}]}


def test_a_version_2_conv_file_loads_as_tiles_in_its_own_space_with_the_same_masks(tmp_path):
    loaded = ad.load_patterns(_write(tmp_path, _v2_document("conv", V2_CONV_VALUES, V2_CONV_LAYERS)))
    # The space is version 2's: its value sets, one unit (tile) and one rate (null): 9 * 3 * 4 * 7 * 5 * 5 * 2 * 2.
    assert loaded.space.values.unit == ("tile",) and loaded.space.values.rate == (None,)
    assert loaded.space.values.size == tuple(map(tuple, V2_CONV_VALUES["size"]))
    assert loaded.space.size == (9 * 3 * 4 * 7 * 5 * 5 * 2 * 2) ** 2
    generator = torch.Generator()
    for layer, fields in zip(loaded.best.layers, V2_CONV_LAYERS):
        assert (layer.unit, layer.rate) == ("tile", None)
        same = ConvLayerPattern(unit="tile", rate=None, **{**fields, "size": tuple(fields["size"])})
        assert layer == same
        got = conv_pattern_mask((64, 4, 16, 16), layer, generator.manual_seed(3))
        assert torch.equal(got, conv_pattern_mask((64, 4, 16, 16), same, generator.manual_seed(3)))
        # Version 2's geometry: the exact density of the tiles (axis_density is unchanged since then).
        density = axis_density(16, layer.size[0], layer.stride, layer.repeat) * axis_density(
            16, layer.size[1], layer.stride, layer.repeat)
        assert float((got == 0).double().mean()) == pytest.approx(float(density), abs=0.02)
    # And it can be saved again, as version 3, and read back to the same patterns.
    again = ad.load_patterns(ad.save_patterns(tmp_path / "v3.json", [loaded.best], loaded.space))
    assert again.space == loaded.space and again.best == loaded.best


def test_a_version_2_transformer_file_has_no_embedding_sites_and_the_same_masks(tmp_path):
    loaded = ad.load_patterns(_write(tmp_path, _v2_document("transformer", V2_TRANSFORMER_VALUES,
                                                           V2_TRANSFORMER_LAYERS)))
    assert loaded.space == TransformerSpace(2, TransformerValues(size=(1, 2, 4), stride=(4, 8, 16)))
    assert loaded.space.num_embeddings == 0 and loaded.best.embeddings == ()
    generator = torch.Generator()
    for layer, fields in zip(loaded.best.layers, V2_TRANSFORMER_LAYERS):
        assert layer == TransformerLayerPattern(**fields)
        got = transformer_pattern_mask((4, 2, 8, 16), layer, generator.manual_seed(5))
        assert torch.equal(got, transformer_pattern_mask((4, 2, 8, 16), TransformerLayerPattern(**fields),
                                                         generator.manual_seed(5)))
    # It puts nothing after the embeddings, as before.
    sites = Regularization(pattern=loaded.best).model_sites(TransformerLM.site_layout(2))
    assert sites["embedding_dropout"] is None


#: The patterns the package shipped in format 2 until their studies were rerun (2026-12-07), kept as
#: real files users may still have.
VERSION_2_FILES = sorted((Path(__file__).parent / "version2").glob("*.json"))


@pytest.mark.parametrize("path", VERSION_2_FILES, ids=[p.stem for p in VERSION_2_FILES])
def test_the_once_shipped_version_2_files_still_load(path):
    loaded = ad.load_patterns(path)
    assert json.loads(path.read_text())["version"] == 2 and len(VERSION_2_FILES) == 3
    assert loaded.space.num_embeddings == 0 and loaded.best.embeddings == ()
    if loaded.space.kind == "conv":  # a version-2 conv layer is a tile pattern with no rate
        assert all(layer.unit == "tile" and layer.rate is None for layer in loaded.best.layers)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["patterns"][0]["layers"][0].update(unit="tile"),
         "pattern 1: site 0: unknown field 'unit' (version-2 files have none"),
        (lambda d: d["space_config"]["values"].update(rate=[None]), "space_config: values: unknown field 'rate'"),
        (lambda d: d["space_config"].update(num_embeddings=1), "space_config: unknown key 'num_embeddings' in a "
                                                                "version-2 file"),
    ],
)
def test_version_2_files_with_version_3_fields_are_rejected(tmp_path, mutate, message):
    document = _mutate(_v2_document("conv", V2_CONV_VALUES, V2_CONV_LAYERS), mutate)
    with pytest.raises(PatternFormatError, match=re.escape(message)):
        ad.load_patterns(_write(tmp_path, document))


def test_version_3_round_trip_with_embedding_sites(tmp_path):
    space = TransformerSpace(2, num_embeddings=2)
    patterns = [space.decode(space.sample(seed)) for seed in range(5)]
    path = ad.save_patterns(tmp_path / "p.json", patterns, space)
    document = json.loads(path.read_text())
    assert document["space_config"]["num_embeddings"] == 2 and "embedding_values" in document["space_config"]
    entry = document["patterns"][0]
    assert list(entry) == ["rank", "reward", "embeddings", "layers"]
    assert entry["embeddings"] == patterns[0].embeddings_to_json()
    loaded = ad.load_patterns(path)
    assert loaded.space == space and [p.pattern for p in loaded.patterns] == patterns


EMBEDDING_CASES = {
    "missing embeddings": (lambda e: e.pop("embeddings"), "pattern 1: missing field 'embeddings'"),
    "wrong count": (lambda e: e["embeddings"].pop(),
                    "pattern 1: has 0 embeddings but space_config.num_embeddings is 1"),
    "not a list": (lambda e: e.update(embeddings={}), "pattern 1: field 'embeddings': expected a list"),
    "bad unit": (lambda e: e["embeddings"][0].update(unit="word"), "pattern 1: embedding 0: field 'unit': 'word'"),
    "missing field": (lambda e: e["embeddings"][0].pop("noise"), "pattern 1: embedding 0: missing field 'noise'"),
    "synonym": (lambda e: e["embeddings"][0].update(unit="off", size=2),
                "pattern 1: embedding 0: unit 'off' does not use field 'size'"),
    "not an object": (lambda e: e["embeddings"].__setitem__(0, 3), "pattern 1: embedding 0: expected an object"),
}


@pytest.mark.parametrize("case", sorted(EMBEDDING_CASES))
def test_bad_embedding_sites_are_named(tmp_path, case):
    mutate, message = EMBEDDING_CASES[case]
    document = _valid_document(TransformerSpace(1, num_embeddings=1))
    document["patterns"][0]["embeddings"] = [{"unit": "feature", "size": 2, "stride": 4, "span": 1,
                                              "noise": "bernoulli"}]
    ad.load_patterns(_write(tmp_path, document))  # valid before the change
    mutate(document["patterns"][0])
    with pytest.raises(PatternFormatError, match=re.escape(message)):
        ad.load_patterns(_write(tmp_path, document))


def test_embeddings_in_a_space_without_embedding_sites_are_rejected(tmp_path):
    document = _valid_document(TransformerSpace(1))
    document["patterns"][0]["embeddings"] = []
    with pytest.raises(PatternFormatError, match="pattern 1: unknown field 'embeddings'"):
        ad.load_patterns(_write(tmp_path, document))
