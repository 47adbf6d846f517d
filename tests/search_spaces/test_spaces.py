import dataclasses
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodropout.search_spaces import (
    SUBLAYERS,
    ConvLayerPattern,
    ConvSpace,
    ConvValues,
    EmbeddingValues,
    Pattern,
    PatternError,
    TransformerSpace,
    TransformerValues,
)

SPACES = [ConvSpace, TransformerSpace]


def test_conv_decisions_are_unit_and_rate_then_the_papers_order():
    space = ConvSpace(num_sites=2)
    names = [d.name for d in space.decisions]
    order = ["unit", "rate", "size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c", "residual"]
    assert names == order * 2
    assert [d.site for d in space.decisions] == [0] * 10 + [1] * 10


def test_transformer_decisions():
    space = TransformerSpace(num_sites=1)
    assert [d.name for d in space.decisions] == [
        "query", "key", "value", "attn_output", "ffn_hidden", "ffn_output",
        "size", "stride", "span", "share_heads", "noise",
    ]


def test_conv_size_counts_tiles_with_every_geometry_and_the_other_units_with_every_rate():
    # Tiles: rate null and every geometry; element, channel, sample: 18 rates, geometry forced, residual free.
    per_site = 16 * 3 * 4 * 7 * 5 * 5 * 2 * 2 + 3 * 18 * 2
    assert ConvSpace(1).size == per_site
    assert ConvSpace(3).size == per_site**3


def test_transformer_size_leaves_out_the_all_off_layers():
    # 2**6 - 1 switch combinations (all off is forbidden) times size, stride, span, share_heads, noise.
    per_site = (2**6 - 1) * 4 * 7 * 6 * 2 * 2
    assert TransformerSpace(1).size == per_site
    assert TransformerSpace(3).size == per_site**3
    # A tiny space, counted by enumerating every token sequence and keeping the decodable ones.
    values = TransformerValues(query=(False, True), key=(False,), value=(False, True), attn_output=(False,),
                               ffn_hidden=(False, True), ffn_output=(False,), size=(1, 2), stride=(4,),
                               span=(1,), share_heads=(True,), noise=("bernoulli",))
    space = TransformerSpace(1, values)
    decodable = 0
    for tokens in itertools.product(*(range(len(d.choices)) for d in space.decisions)):
        try:
            space.decode(list(tokens))
        except PatternError:
            continue
        decodable += 1
    assert space.size == decodable == 7 * 2


def test_size_of_a_tiny_custom_space_by_enumeration():
    values = ConvValues(unit=("tile",), rate=(None,), size=((1, 1), (2, 2)), stride=(1,), repeat=(1, 2), rotate=(0,),
                        shear_x=(0.0,), shear_y=(0.0,), share_c=(True,), residual=(False, True))
    space = ConvSpace(2, values)
    seen = {tuple(space.sample(random.Random(i))) for i in range(2000)}
    assert len(seen) == space.size == 64


@pytest.mark.parametrize("cls", SPACES)
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sites=st.integers(1, 6))
def test_decode_encode_round_trip(cls, seed, sites):
    space = cls(sites)
    tokens = space.sample(seed)
    pattern = space.decode(tokens)
    assert len(pattern.layers) == sites
    assert space.encode(pattern) == tokens
    space.validate(pattern)


@pytest.mark.parametrize("cls", SPACES)
def test_sampling_is_seeded(cls):
    space = cls(4)
    assert space.sample(7) == space.sample(7)
    assert space.sample(7) != space.sample(8)


@pytest.mark.parametrize("cls", SPACES)
def test_sample_is_roughly_uniform_per_decision_among_the_allowed_choices(cls):
    space = cls(1)
    rng = random.Random(0)
    counts = [[0] * len(d.choices) for d in space.decisions]
    # Per choice, the sum over samples of its probability (1 / allowed choices, 0 if forbidden) and of
    # that probability's Bernoulli variance.
    expected = [[0.0] * len(d.choices) for d in space.decisions]
    variance = [[0.0] * len(d.choices) for d in space.decisions]
    for _ in range(4000):
        tokens = space.sample(rng)
        for i, t in enumerate(tokens):
            counts[i][t] += 1
            allowed = space.choice_mask(tokens[:i]) or (True,) * len(space.decisions[i].choices)
            for choice, ok in enumerate(allowed):
                p = ok / sum(allowed)
                expected[i][choice] += p
                variance[i][choice] += p * (1 - p)
    for d, c, e, v in zip(space.decisions, counts, expected, variance):
        # 5 standard deviations of a sum of Bernoulli counts; a forbidden choice is never drawn.
        assert all(abs(x - m) <= 5 * s**0.5 for x, m, s in zip(c, e, v)), (d.name, c, e)


def test_decode_rejects_bad_tokens():
    space = ConvSpace(2)
    with pytest.raises(PatternError, match="expects 20 tokens, got 3"):
        space.decode([0, 0, 0])
    tokens = space.sample(0)
    tokens[13] = 99
    with pytest.raises(PatternError, match=r"site 1 field 'stride': token 99"):
        space.decode(tokens)


def test_validate_names_site_and_field():
    space = ConvSpace(2)
    pattern = space.decode(space.sample(0))
    bad_layer = ConvLayerPattern(**{**pattern.layers[1].__dict__, "rotate": 13})
    bad = Pattern("conv", (pattern.layers[0], bad_layer))
    with pytest.raises(PatternError, match=r"site 1 field 'rotate': 13 is not one of"):
        space.validate(bad)
    with pytest.raises(PatternError, match="pattern has 1 sites, the conv space has 2"):
        space.validate(Pattern("conv", pattern.layers[:1]))
    with pytest.raises(PatternError, match="pattern is for a 'conv' space, this space is 'transformer'"):
        TransformerSpace(2).validate(pattern)


def test_bool_is_not_an_int_choice():
    space = ConvSpace(1)
    layer = space.decode(space.sample(0)).layers[0]
    bad = Pattern("conv", (ConvLayerPattern(**{**layer.__dict__, "share_c": 1}),))
    with pytest.raises(PatternError, match="share_c"):
        space.validate(bad)


@pytest.mark.parametrize("num_sites", [0, -1, 1.5, True, "3"])
def test_num_sites_must_be_positive_int(num_sites):
    with pytest.raises(ValueError, match="num_sites"):
        ConvSpace(num_sites)


@pytest.mark.parametrize("cls", SPACES)
def test_config_round_trip_with_custom_values(cls):
    space = cls(3)
    values = cls.values_type.from_mapping({"stride": [2, 4]})
    custom = cls(3, values)
    assert custom != space
    assert cls.from_config(custom.config()) == custom
    assert [d.choices for d in custom.decisions if d.name == "stride"][0] == (2, 4)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"strides": [1]}, "unknown key 'strides'"),
        ({"stride": []}, "values.stride: expected a non-empty list"),
        ({"stride": [1, 1]}, "values.stride: duplicate"),
        ({"stride": [0]}, "values.stride: 0 is not a valid choice"),
        ({"share_c": [1]}, "values.share_c: 1 is not a valid choice"),
        ({"size": [[2]]}, "values.size"),
        ({"rate": ["0.3"]}, "values.rate: '0.3' is not a valid choice"),
        ({"rate": [True]}, "values.rate: True is not a valid choice"),
    ],
)
def test_bad_value_sets_name_the_key(mapping, message):
    with pytest.raises(PatternError, match=message):
        ConvValues.from_mapping(mapping)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ConvValues(stride=(0, 1)), "values.stride: 0 is not a valid choice"),
        (lambda: TransformerValues(noise=("bernoulli", "uniform")), "values.noise: 'uniform' is not a valid choice"),
        (lambda: EmbeddingValues(size=(0,)), "embedding_values.size: 0 is not a valid choice"),
        (lambda: ConvSpace(1, dataclasses.replace(ConvValues(), shear_x=(2.0,), shear_y=(0.5,))),
         "values.shear_x, values.shear_y: 2.0 and 0.5 multiply to 1"),
    ],
)
def test_value_sets_built_in_python_make_only_usable_patterns(build, message):
    # The regularizers trust a space's patterns, so every way of building a space checks its choices.
    with pytest.raises(PatternError, match=message):
        build()


def test_an_unknown_noise_names_the_key_of_the_mapping():
    with pytest.raises(PatternError, match="search.values.noise: 'uniform' is not a valid choice"):
        TransformerValues.from_mapping({"noise": ["uniform"]}, "search.values")


def test_transformer_span_accepts_all_and_ints():
    values = TransformerValues.from_mapping({"span": [1, "all"]})
    assert values.span == (1, "all")
    with pytest.raises(PatternError, match="values.span"):
        TransformerValues.from_mapping({"span": ["some"]})


def test_sublayers_property():
    space = TransformerSpace(1)
    tokens = [1, 0, 1, 0, 0, 1] + [0] * 5
    assert space.decode(tokens).layers[0].sublayers == ("query", "value", "ffn_output")


def test_transformer_choice_mask_forbids_only_the_all_off_layer():
    space = TransformerSpace(2)
    off, on = 0, 1
    # Decision 5 (ffn_output) after five off switches: only "true" is allowed.
    assert space.choice_mask([off] * 5) == (False, True)
    assert space.choice_mask([off, off, on, off, off]) is None
    # Every other position is free, including ffn_output of the second site after an active first one.
    assert all(space.choice_mask([on] * n) is None for n in range(5))
    assert space.choice_mask([on] * 11 + [off] * 5) == (False, True)
    assert space.choice_mask([off] * 6) is None  # size: free (the prefix is not checked, only read)


def test_the_mask_moves_to_the_last_switch_that_can_be_on():
    values = TransformerValues(attn_output=(False,), ffn_hidden=(True, False), ffn_output=(False,))
    space = TransformerSpace(1, values)
    assert space.choice_mask([0, 0, 0, 0]) == (True, False)  # ffn_hidden, whose choices are (True, False)
    assert space.choice_mask([0, 0, 0, 0, 0]) is None
    layers = [space.decode(space.sample(seed)).layers[0] for seed in range(300)]
    assert all(layer.sublayers for layer in layers)


def test_no_switch_that_can_be_on_is_an_error():
    values = TransformerValues(**dict.fromkeys(("query", "key", "value", "attn_output", "ffn_hidden",
                                                "ffn_output"), (False,)))
    with pytest.raises(PatternError, match="at least one sublayer switch .* must allow true"):
        TransformerSpace(1, values)


def test_sampling_never_gives_an_all_off_layer_and_forces_the_last_switch_when_needed():
    space = TransformerSpace(4)
    forced = 0
    for seed in range(2000):
        pattern = space.decode(space.sample(seed))
        assert all(layer.sublayers for layer in pattern.layers)
        forced += sum(layer.sublayers == ("ffn_output",) for layer in pattern.layers)
    # ("ffn_output",) alone happens exactly when the five earlier switches are off: 1/32 of 8000
    # layers = 250, binomial sigma 15.3; allow 5 sigma.
    assert abs(forced - 250) < 77


def test_all_off_layers_are_rejected_with_a_clear_message():
    space = TransformerSpace(2)
    tokens = space.sample(0)
    tokens[11:17] = [0] * 6
    message = r"site 1: every sublayer switch \(query, key, value, attn_output, ffn_hidden, ffn_output\) is false"
    with pytest.raises(PatternError, match=message):
        space.decode(tokens)
    good = space.decode(space.sample(0))
    off = dataclasses.replace(good.layers[1], **dict.fromkeys(SUBLAYERS, False))
    with pytest.raises(PatternError, match=message):
        space.validate(Pattern("transformer", (good.layers[0], off)))
    with pytest.raises(PatternError, match=r"x: every sublayer switch .* identity"):
        space.layer_from_json(dataclasses.asdict(off), where="x: ")
