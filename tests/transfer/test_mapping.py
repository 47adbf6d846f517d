"""Layer mapping by relative depth (autodropout.patterns.mapping): hand-computed maps in both directions,
1-site patterns and targets, encoder-decoder stacks, kind mismatches."""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodropout.patterns.mapping import depth_map, map_pattern
from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    EmbeddingPattern,
    EmbeddingValues,
    Pattern,
    PatternError,
    TransformerLayerPattern,
    TransformerSpace,
    TransformerValues,
)


def conv_layer(tag: int) -> ConvLayerPattern:
    """A valid conv site tagged by its rotation (``15 * tag`` degrees), so mapped layers can be told apart."""
    return ConvLayerPattern(unit="tile", rate=None, size=(3, 3), stride=1, repeat=2, rotate=15 * tag, shear_x=0.0,
                            shear_y=0.0, share_c=False, residual=False)


def tags(pattern: Pattern) -> list[int]:
    return [layer.rotate // 15 for layer in pattern.layers]


def tf_layer(span: int, query: bool = True) -> TransformerLayerPattern:
    """A valid Transformer layer tagged by its ``span``."""
    return TransformerLayerPattern(query=query, key=False, value=True, attn_output=False, ffn_hidden=True,
                                   ffn_output=False, size=2, stride=4, span=span, share_heads=True,
                                   noise="bernoulli")


def conv_pattern(*tag_values: int) -> Pattern:
    return Pattern("conv", tuple(conv_layer(t) for t in tag_values))


def tf_pattern(*spans: int) -> Pattern:
    return Pattern("transformer", tuple(tf_layer(s) for s in spans))


@pytest.mark.parametrize(("source", "target", "expected"), [
    (4, 2, [1, 3]),           # shrink: centres 0.25, 0.75 of 4 sites -> sites 1, 3
    (2, 4, [0, 0, 1, 1]),     # grow: each source site covers half of the target
    (3, 2, [0, 2]),           # centres 0.25, 0.75 of 3 sites -> 0.75, 2.25
    (2, 3, [0, 1, 1]),        # centres 1/6, 1/2, 5/6 of 2 sites -> 0.33, 1.0, 1.67
    (12, 3, [2, 6, 10]),
    (1, 3, [0, 0, 0]),        # one source site fills every target site
    (3, 1, [1]),              # a 1-site target takes the middle site
    (4, 1, [2]),              # with an even count, the upper of the two middle sites
    (1, 1, [0]),
    (12, 12, list(range(12))),  # WRN-28-2 -> WRN-28-10: same site count, identity
])
def test_depth_map_hand_computed(source, target, expected):
    assert depth_map(source, target) == expected


@pytest.mark.parametrize(("source", "target"), [(0, 3), (3, 0), (-1, 2)])
def test_depth_map_rejects_non_positive_counts(source, target):
    with pytest.raises(ValueError, match="site counts must be positive"):
        depth_map(source, target)


@settings(max_examples=200, deadline=None)
@given(source=st.integers(1, 40), target=st.integers(1, 40))
def test_depth_map_is_monotone_and_covers_when_growing(source, target):
    mapped = depth_map(source, target)
    assert len(mapped) == target
    assert all(0 <= i < source for i in mapped)
    assert mapped == sorted(mapped)
    if target >= source:  # every source site is used
        assert set(mapped) == set(range(source))
    else:  # no source site is used twice
        assert len(set(mapped)) == target


def test_map_pattern_shrinks_and_grows_conv_patterns():
    source = conv_pattern(1, 2, 3, 4)
    shrunk = map_pattern(source, ConvSpace(2))
    assert tags(shrunk) == [2, 4]
    grown = map_pattern(conv_pattern(1, 4), ConvSpace(5))
    # centres (j + 0.5) / 5 of 2 sites: 0.2, 0.6, 1.0, 1.4, 1.8 -> 0, 0, 1, 1, 1
    assert tags(grown) == [1, 1, 4, 4, 4]


def test_map_pattern_one_site_both_ways():
    assert tags(map_pattern(conv_pattern(3), ConvSpace(4))) == [3, 3, 3, 3]
    assert tags(map_pattern(conv_pattern(1, 2, 3), ConvSpace(1))) == [2]


def test_map_pattern_equal_counts_is_the_same_pattern():
    source = conv_pattern(1, 2, 3)
    assert map_pattern(source, ConvSpace(3)) == source


def test_lm_pattern_maps_onto_encoder_and_decoder_by_relative_depth():
    # A 4-layer LM pattern onto 2 encoder + 3 decoder layers: each stack gets the whole LM pattern.
    lm = tf_pattern(1, 2, 4, 8)
    mapped = map_pattern(lm, TransformerSpace(5), stacks=(2, 3))
    spans = [layer.span for layer in mapped.layers]
    assert spans[:2] == [2, 8]           # encoder: depth_map(4, 2) = [1, 3]
    assert spans[2:] == [1, 4, 8]        # decoder: depth_map(4, 3) = [0, 2, 3]


def test_pattern_with_encoder_plus_decoder_sites_is_used_as_is():
    pattern = tf_pattern(1, 2, 4, 8)
    assert map_pattern(pattern, TransformerSpace(4), stacks=(2, 2)) == pattern


def test_stacks_must_add_up_to_the_target():
    with pytest.raises(ValueError, match=r"stacks \(2, 2\) do not add up to the target's 5 sites"):
        map_pattern(tf_pattern(1, 2), TransformerSpace(5), stacks=(2, 2))


@pytest.mark.parametrize(("pattern", "space", "message"), [
    (conv_pattern(1, 2), TransformerSpace(2), "a conv pattern cannot be applied to a transformer model"),
    (tf_pattern(1, 2), ConvSpace(3), "a transformer pattern cannot be applied to a conv model"),
])
def test_kind_mismatch_is_a_pattern_error(pattern, space, message):
    with pytest.raises(PatternError, match=message):
        map_pattern(pattern, space)


def test_mapped_pattern_is_validated_against_the_target_values():
    # The target space does not allow span 8: the mapped pattern must be rejected, naming the field.
    narrow = TransformerSpace(2, dataclasses.replace(TransformerValues(), span=(1, 2, 4)))
    with pytest.raises(PatternError, match="site 1 field 'span': 8"):
        map_pattern(tf_pattern(1, 2, 4, 8), narrow)


FEATURE = EmbeddingPattern("feature", 2, 4, "all", "bernoulli")
TOKEN = EmbeddingPattern("token", 1, 8, 1, "gaussian")


def test_the_lm_embedding_pattern_goes_onto_both_translation_embeddings():
    lm = Pattern("transformer", tf_pattern(1, 2).layers, (FEATURE,))
    mapped = map_pattern(lm, TransformerSpace(4, num_embeddings=2), stacks=(2, 2))
    assert mapped.embeddings == (FEATURE, FEATURE)
    # Back onto a language model: the middle of two by relative depth, the target embedding's.
    translation = Pattern("transformer", mapped.layers, (FEATURE, TOKEN))
    assert map_pattern(translation, TransformerSpace(2, num_embeddings=1)).embeddings == (TOKEN,)


def test_a_pattern_without_embeddings_gets_off_at_each_and_a_target_without_drops_them():
    space = TransformerSpace(2, num_embeddings=2)
    mapped = map_pattern(tf_pattern(1, 2), space)  # a version-2 pattern: layers only
    assert mapped.embeddings == (space.off_embedding(),) * 2 and mapped.embeddings[0].unit == "off"
    space.validate(mapped)
    with_embeddings = Pattern("transformer", tf_pattern(1, 2).layers, (TOKEN,))
    assert map_pattern(with_embeddings, TransformerSpace(2)).embeddings == ()


def test_mapped_embeddings_are_validated_against_the_target_values():
    narrow = TransformerSpace(2, num_embeddings=1, embedding_values=EmbeddingValues(unit=("off", "feature")))
    with pytest.raises(PatternError, match="embedding 0 field 'unit': 'token' is not one of"):
        map_pattern(Pattern("transformer", tf_pattern(1, 2).layers, (TOKEN,)), narrow)
