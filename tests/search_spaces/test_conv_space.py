"""The conv space's units (format version 3): ``choice_mask`` gives every pattern one encoding, ``size``
counts exactly the patterns that decode, the rate grid covers the baselines' domains, errors name the
site and field, and version-2 layers keep their meaning with ``v2_upgrade`` (pure Python)."""
import dataclasses
import itertools
from fractions import Fraction

import pytest

from autodropout.search_spaces import ConvLayerPattern, ConvSpace, ConvValues, Pattern, PatternError
from autodropout.search_spaces.conv import GEOMETRY, UNITS

SPACE = ConvSpace(2)
NAMES = [name for name, _ in SPACE.decision_types]
TILE, ELEMENT = 0, 1  # unit tokens
TINY = ConvValues(unit=UNITS, rate=(None, 0.1, 0.5), size=((1, 1), (2, 1)), stride=(1, 3), repeat=(2,), rotate=(0,),
                  shear_x=(0.0,), shear_y=(0.0, 0.3), share_c=(False, True), residual=(False, True))
V2_LAYER = {"size": [2, 2], "stride": 3, "repeat": 4, "rotate": 90, "shear_x": 0.3, "shear_y": -0.3,
            "share_c": True, "residual": False}


def decodable(space: ConvSpace) -> list[tuple[int, ...]]:
    """Every token sequence of ``space`` that decodes, by brute force over all index combinations."""
    found = []
    for tokens in itertools.product(*(range(len(d.choices)) for d in space.decisions)):
        try:
            space.decode(list(tokens))
        except PatternError:
            continue
        found.append(tokens)
    return found


def test_after_a_tile_only_a_null_rate_and_every_geometry_are_allowed():
    assert SPACE.choice_mask([]) is None  # every unit
    assert SPACE.choice_mask([TILE]) == (True,) + (False,) * 18
    assert all(SPACE.choice_mask([TILE, 0] + [0] * n) is None for n in range(8))


@pytest.mark.parametrize("unit", [1, 2, 3])
def test_after_another_unit_a_numeric_rate_and_only_the_first_geometry_are_allowed(unit):
    assert SPACE.choice_mask([unit]) == (False,) + (True,) * 18
    for offset in range(2, 10):
        mask = SPACE.choice_mask([unit, 5] + [0] * (offset - 2))
        if NAMES[offset] in GEOMETRY:
            assert mask == (True,) + (False,) * (len(SPACE.decision_types[offset][1]) - 1), NAMES[offset]
        else:
            assert NAMES[offset] == "residual" and mask is None
    # The second site reads its own unit, not the first site's.
    assert SPACE.choice_mask([unit, 5] + [0] * 8 + [TILE]) == (True,) + (False,) * 18


def test_size_is_the_exact_count_of_decodable_patterns_and_each_has_one_encoding():
    space = ConvSpace(1, TINY)
    found = decodable(space)
    # Tiles: 2 sizes x 2 strides x 2 shears x 2 share_c x 2 residual; other units: 2 rates x 2 residual.
    assert space.size == len(found) == 32 + 3 * 4
    layers = [space.decode(list(tokens)).layers[0] for tokens in found]
    # No synonyms: what a non-tile layer does (unit, rate, residual) identifies its tokens.
    effects = [(layer.unit, layer.rate, layer.residual) for layer in layers if layer.unit != "tile"]
    assert len(set(effects)) == len(effects) == 12
    assert all(space.encode(Pattern("conv", (layer,))) == list(tokens) for layer, tokens in zip(layers, found))
    assert ConvSpace(2, TINY).size == len(found) ** 2


def test_sampling_draws_only_allowed_patterns_with_forced_fields_at_their_first_choice():
    for seed in range(300):
        for layer in SPACE.decode(SPACE.sample(seed)).layers:
            assert (layer.rate is None) == (layer.unit == "tile")
            if layer.unit != "tile":
                first = {name: dict(SPACE.decision_types)[name][0] for name in GEOMETRY}
                assert {name: getattr(layer, name) for name in GEOMETRY} == first


def test_every_rate_up_to_0_7_is_within_0_02_of_a_choice():
    grid = [Fraction(r).limit_denominator(1000) for r in ConvValues().rate if r is not None]
    assert all(0 < r < 1 for r in grid)
    for k in range(7001):  # every 0.0001 in [0, 0.7], exactly
        rate = Fraction(k, 10000)
        assert min(abs(rate - choice) for choice in grid) <= Fraction(2, 100), rate


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate": 0.3}, r"site 1: unit 'tile' takes rate null \(its tiles set the density\), got 0.3"),
        ({"unit": "element"}, r"site 1: unit 'element' needs a rate \(a drop probability\), got null"),
        ({"unit": "channel", "rate": 0.3, "size": (2, 2)},
         r"site 1: unit 'channel' does not use field 'size', which must then be its first choice \[1, 1\] "
         r"\(one encoding per pattern\), got \[2, 2\]"),
        ({"unit": "sample", "rate": 0.3, "share_c": True}, r"site 1: unit 'sample' does not use field 'share_c'"),
    ],
)
def test_patterns_the_mask_forbids_are_rejected_naming_the_site(changes, message):
    good = SPACE.decode([TILE, 0] + [0] * 8 + [TILE, 0] + [0] * 8)
    bad = Pattern("conv", (good.layers[0], dataclasses.replace(good.layers[1], **changes)))
    with pytest.raises(PatternError, match=message):
        SPACE.validate(bad)
    with pytest.raises(PatternError, match=message.replace("site 1: ", "x: ")):
        SPACE.layer_from_json(bad.to_json()[1], where="x: ")
    tokens = [TILE, 0] + [0] * 8
    tokens += [choices.index(getattr(bad.layers[1], name)) for name, choices in SPACE.decision_types]
    with pytest.raises(PatternError, match=message):
        SPACE.decode(tokens)


def test_version_2_layers_are_upgraded_to_tiles():
    assert ConvSpace.v2_upgrade == {"unit": "tile", "rate": None}
    layer = SPACE.layer_from_json({**V2_LAYER, **ConvSpace.v2_upgrade}, where="x: ")
    assert layer == ConvLayerPattern("tile", None, (2, 2), 3, 4, 90, 0.3, -0.3, True, False)
    # The paper's version-2 value sets are a subset of the defaults, so every version-2 layer fits.
    v2 = dict(size=[(h, w) for h in (1, 2, 3) for w in (1, 2, 3)], stride=(1, 2, 3), repeat=(1, 2, 4, 8))
    for name, choices in v2.items():
        assert set(choices) <= set(getattr(ConvValues(), name)), name


def test_config_round_trip_keeps_null_rates():
    config = SPACE.config()
    assert config["values"]["unit"] == list(UNITS) and config["values"]["rate"][:2] == [None, 0.02]
    assert ConvSpace.from_config(config) == SPACE


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"unit": ("tile", "pixel")}, r"values.unit: 'pixel' is not a unit \(expected some of \['tile', "),
        ({"rate": (None, 0.0)}, r"values.rate: 0.0 is neither null nor a drop probability in \(0, 1\)"),
        ({"rate": (1.0,)}, r"values.rate: 1.0 is neither null"),
        ({"unit": ("element",), "rate": (None,)}, "values: no unit can be completed: 'tile' needs null"),
    ],
)
def test_bad_unit_and_rate_value_sets_name_the_key(values, message):
    with pytest.raises(PatternError, match=message):
        ConvSpace(1, dataclasses.replace(ConvValues(), **values))


def test_a_unit_the_rates_cannot_complete_is_forbidden():
    space = ConvSpace(1, dataclasses.replace(ConvValues(), unit=("tile", "element"), rate=(None,)))
    assert space.choice_mask([]) == (True, False)
    assert space.size == 16 * 3 * 4 * 7 * 5 * 5 * 2 * 2
    only_rates = ConvSpace(1, dataclasses.replace(ConvValues(), rate=(0.1, 0.3)))
    assert only_rates.choice_mask([]) == (False, True, True, True) and only_rates.size == 3 * 2 * 2
