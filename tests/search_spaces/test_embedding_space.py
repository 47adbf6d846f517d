"""The Transformer space's embedding sites (pattern format version 3) and its default rate grid."""
import dataclasses
import itertools
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodropout.search_spaces import (
    EMBEDDING_UNITS,
    ConvSpace,
    EmbeddingPattern,
    EmbeddingValues,
    Pattern,
    PatternError,
    TransformerSpace,
    TransformerValues,
    nominal_rate,
)

FEATURE = EmbeddingPattern("feature", 2, 8, "all", "bernoulli")


def test_embedding_decisions_come_first_with_their_own_keys():
    space = TransformerSpace(2, num_embeddings=2)
    assert [d.key for d in space.decisions[:6]] == [
        "embedding 0.unit", "embedding 0.size", "embedding 0.stride", "embedding 0.span", "embedding 0.noise",
        "embedding 1.unit"]
    assert space.decisions[10].key == "site 0.query" and space.decisions[10].group == "layer"
    assert len(space.decisions) == 2 * 5 + 2 * 11
    assert {d.type_key for d in space.decisions if d.name == "size"} == {("embedding", "size"), ("layer", "size")}
    assert space.locate(7) == ("embedding", 1, 2) and space.locate(10) == ("layer", 0, 0)


def test_without_embeddings_the_space_is_version_2s():
    space = TransformerSpace(3)
    assert space.num_embeddings == 0 and all(d.group == "layer" for d in space.decisions)
    assert set(space.config()) == {"num_sites", "values"}
    assert space.decode(space.sample(0)).embeddings == ()
    assert TransformerSpace(3, num_embeddings=1) != space


def test_choice_mask_forces_what_a_unit_does_not_read():
    space = TransformerSpace(1, num_embeddings=1)
    units = space.embedding_values.unit
    off, feature, token = (units.index(u) for u in ("off", "feature", "token"))
    first = {name: (True,) + (False,) * (len(choices) - 1) for name, choices in space.embedding_types}
    assert space.choice_mask([]) is None  # the unit itself is free
    assert [space.choice_mask([off] + [0] * k) for k in range(4)] == [
        first["size"], first["stride"], first["span"], first["noise"]]
    assert [space.choice_mask([feature] + [0] * k) for k in range(4)] == [None] * 4
    assert [space.choice_mask([token] + [0] * k) for k in range(4)] == [None, None, first["span"], None]
    assert space.choice_mask([off, 0, 0, 0, 0]) is None  # the layer's first switch


def test_every_embedding_pattern_has_one_encoding_and_size_counts_them():
    # Enumerate a small space: every decodable token sequence gives a different pattern.
    values = EmbeddingValues(size=(1, 2), stride=(4, 8, 16), span=(1, "all"), noise=("bernoulli", "gaussian"))
    space = TransformerSpace(1, TransformerValues(**{name: (True,) for name in ("query", "key")}, size=(1,),
                                                  stride=(4,), span=(1,), share_heads=(True,), noise=("bernoulli",)),
                             num_embeddings=1, embedding_values=values)
    patterns = set()
    for tokens in itertools.product(*(range(len(d.choices)) for d in space.decisions)):
        try:
            patterns.add(space.decode(list(tokens)))
        except PatternError:
            continue
    # off: 1; feature: 2 * 3 * 2 * 2; token: 2 * 3 * 2 (span forced); times the 16 layer patterns.
    assert space.embeddings_per_site == 1 + 24 + 12
    assert len(patterns) == space.size == 37 * 16
    assert TransformerSpace(2, num_embeddings=2).embeddings_per_site == 1 + 4 * 7 * 6 * 2 + 4 * 7 * 2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sites=st.integers(1, 4), embeddings=st.integers(0, 3))
def test_decode_encode_round_trip_with_embeddings(seed, sites, embeddings):
    space = TransformerSpace(sites, num_embeddings=embeddings)
    tokens = space.sample(seed)
    pattern = space.decode(tokens)
    assert len(pattern.layers) == sites and len(pattern.embeddings) == embeddings
    assert space.encode(pattern) == tokens


def test_sampling_draws_every_unit_uniformly():
    space = TransformerSpace(1, num_embeddings=1)
    rng = random.Random(0)
    units = [space.decode(space.sample(rng)).embeddings[0].unit for _ in range(3000)]
    # 1000 expected per unit, binomial sigma 25.8; allow 5 sigma.
    assert all(abs(units.count(unit) - 1000) < 130 for unit in EMBEDDING_UNITS)


def test_invalid_embedding_patterns_are_named():
    space = TransformerSpace(1, num_embeddings=1)
    pattern = space.decode(space.sample(3))
    with pytest.raises(PatternError, match="pattern has 0 embedding sites, the transformer space has 1"):
        space.validate(Pattern("transformer", pattern.layers))
    with pytest.raises(PatternError, match="embedding 0 field 'stride': 5 is not one of"):
        space.validate(Pattern("transformer", pattern.layers, (dataclasses.replace(FEATURE, stride=5),)))
    off = EmbeddingPattern("off", 2, 4, 1, "bernoulli")
    with pytest.raises(PatternError, match="embedding 0: unit 'off' does not use field 'size', which must then be "
                                           "its first choice 1 .one encoding per pattern., got 2"):
        space.validate(Pattern("transformer", pattern.layers, (off,)))
    token = EmbeddingPattern("token", 2, 4, "all", "gaussian")
    with pytest.raises(PatternError, match="x: unit 'token' does not use field 'span'"):
        space.embedding_from_json(dataclasses.asdict(token), where="x: ")
    with pytest.raises(PatternError, match="embedding 0: expected EmbeddingPattern, got TransformerLayerPattern"):
        space.validate(Pattern("transformer", pattern.layers, pattern.layers))
    tokens = space.sample(0)
    tokens[1] = 99
    with pytest.raises(PatternError, match="embedding 0 field 'size': token 99"):
        space.decode(tokens)
    with pytest.raises(PatternError, match="1 sites and 1 embedding sites expects 16 tokens, got 2"):
        space.decode([0, 0])


def test_off_embedding_is_the_forced_encoding():
    space = TransformerSpace(1, num_embeddings=1)
    assert space.off_embedding() == EmbeddingPattern("off", 1, 4, 1, "bernoulli")
    space.validate(Pattern("transformer", space.decode(space.sample(0)).layers, (space.off_embedding(),)))
    with pytest.raises(PatternError, match="embedding_values.unit: \\['feature'\\] has no 'off'"):
        TransformerSpace(1, num_embeddings=1, embedding_values=EmbeddingValues(unit=("feature",))).off_embedding()


def test_config_round_trip_and_errors_name_the_key():
    values = EmbeddingValues.from_mapping({"unit": ["off", "token"], "stride": [4, 8]}, "embedding_values")
    space = TransformerSpace(2, num_embeddings=2, embedding_values=values)
    config = space.config()
    assert config["num_embeddings"] == 2 and config["embedding_values"]["unit"] == ["off", "token"]
    assert TransformerSpace.from_config(config) == space
    with pytest.raises(PatternError, match="embedding_values.stride: 0 is not a valid choice"):
        TransformerSpace.from_config({"num_sites": 1, "num_embeddings": 1, "embedding_values": {"stride": [0]}})
    with pytest.raises(PatternError, match="'embedding_values' given without embedding sites"):
        TransformerSpace.from_config({"num_sites": 1, "embedding_values": {}})
    with pytest.raises(PatternError, match="space_config: unknown key 'num_embeddings'"):
        ConvSpace.from_config({"num_sites": 1, "num_embeddings": 1})
    with pytest.raises(PatternError, match="embedding_values.unit: 'word' is not a unit"):
        TransformerSpace(1, num_embeddings=1, embedding_values=EmbeddingValues(unit=("off", "word")))
    with pytest.raises(PatternError, match="num_embeddings must be an int >= 0"):
        TransformerSpace(1, num_embeddings=-1)


@pytest.mark.parametrize("values", [TransformerValues(), EmbeddingValues()], ids=["layers", "embeddings"])
def test_default_rates_come_within_0_02_of_every_baseline_rate(values):
    # The baselines tune their rates in [0, 0.5] (study.baselines); the nominal rates of the default
    # (size, stride) pairs must leave no point of it farther than 0.02 from one: the lowest is at
    # most 0.02, consecutive ones are at most 0.04 apart up to 0.48 or more.
    rates = sorted({Fraction(size, size + stride) for size in values.size for stride in values.stride})
    tol = Fraction(2, 100)
    assert rates[0] <= tol
    inside = [r for r in rates if r <= Fraction(1, 2) + tol]
    assert inside[-1] >= Fraction(1, 2) - tol
    assert max(b - a for a, b in zip(inside, inside[1:])) <= 2 * tol
    # Version 2's sets stay inside, so its patterns keep their encoding.
    assert {1, 2, 4} <= set(values.size) and {4, 8, 16} <= set(values.stride)


def test_nominal_rate_is_exact_after_the_cut():
    assert nominal_rate(4, 8, 64) == Fraction(1, 3)
    assert nominal_rate(6, 4, 4) == Fraction(3, 7)  # run cut to 3 units
    assert nominal_rate(2, 4, 1) == 0  # one unit (or one token): nothing can drop
    assert FEATURE.rate(16, 64) == Fraction(1, 5)
    assert EmbeddingPattern("token", 6, 4, 1, "bernoulli").rate(5, 64) == Fraction(4, 8)
    assert EmbeddingPattern("off", 1, 4, 1, "bernoulli").rate(16, 64) == 0
