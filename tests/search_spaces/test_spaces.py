import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    ConvValues,
    Pattern,
    PatternError,
    TransformerSpace,
    TransformerValues,
)

SPACES = [ConvSpace, TransformerSpace]


def test_conv_decisions_follow_the_papers_order():
    space = ConvSpace(num_sites=2)
    names = [d.name for d in space.decisions]
    order = ["size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c", "residual"]
    assert names == order * 2
    assert [d.site for d in space.decisions] == [0] * 8 + [1] * 8


def test_transformer_decisions():
    space = TransformerSpace(num_sites=1)
    assert [d.name for d in space.decisions] == [
        "query", "key", "value", "attn_output", "ffn_hidden", "ffn_output",
        "size", "stride", "span", "share_heads", "noise",
    ]


@pytest.mark.parametrize("cls", SPACES)
def test_size_is_product_of_choices_per_site(cls):
    one = cls(1)
    expected = 1
    for d in one.decisions:
        expected *= len(d.choices)
    assert one.size == expected
    assert cls(3).size == expected**3


def test_size_of_a_tiny_custom_space_by_enumeration():
    values = ConvValues(size=((1, 1), (2, 2)), stride=(1,), repeat=(1, 2), rotate=(0,),
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
def test_sample_is_roughly_uniform_per_decision(cls):
    space = cls(1)
    rng = random.Random(0)
    counts = [[0] * len(d.choices) for d in space.decisions]
    n = 4000
    for _ in range(n):
        for i, t in enumerate(space.sample(rng)):
            counts[i][t] += 1
    for d, c in zip(space.decisions, counts):
        expected = n / len(d.choices)
        # 5 standard deviations of a binomial count
        tol = 5 * (expected * (1 - 1 / len(d.choices))) ** 0.5
        assert all(abs(x - expected) < tol for x in c), (d.name, c)


def test_decode_rejects_bad_tokens():
    space = ConvSpace(2)
    with pytest.raises(PatternError, match="expects 16 tokens, got 3"):
        space.decode([0, 0, 0])
    tokens = space.sample(0)
    tokens[9] = 99
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
    ],
)
def test_bad_value_sets_name_the_key(mapping, message):
    with pytest.raises(PatternError, match=message):
        ConvValues.from_mapping(mapping)


def test_transformer_span_accepts_all_and_ints():
    values = TransformerValues.from_mapping({"span": [1, "all"]})
    assert values.span == (1, "all")
    with pytest.raises(PatternError, match="values.span"):
        TransformerValues.from_mapping({"span": ["some"]})


def test_sublayers_property():
    space = TransformerSpace(1)
    tokens = [1, 0, 1, 0, 0, 1] + [0] * 5
    assert space.decode(tokens).layers[0].sublayers == ("query", "value", "ffn_output")
