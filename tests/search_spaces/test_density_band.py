"""The conv space has no degenerate tile: every (size, stride, repeat) of the default value sets
has an exact expected drop density inside the documented band [1/16, 16/25] at every map side from 2
to 64, on square and non-square maps; the per-axis rule matches its definition (pure Python)."""
import math
from fractions import Fraction

import pytest

from autodropout.search_spaces import ConvLayerPattern, ConvSpace, ConvValues
from autodropout.search_spaces.conv import MIN_PERIOD, axis_density, axis_tiling

VALUES = ConvValues()
SIDES = range(2, 65)
AXIS_SIDES = sorted({side for pair in VALUES.size for side in pair})
RATES = sorted({Fraction(h, h + s) for h, _ in VALUES.size for s in VALUES.stride})


def test_the_default_per_axis_rates_are_the_documented_ones():
    assert RATES == [Fraction(1, 4), Fraction(1, 3), Fraction(2, 5), Fraction(1, 2), Fraction(4, 7),
                     Fraction(3, 5), Fraction(2, 3), Fraction(3, 4), Fraction(4, 5)]


@pytest.mark.parametrize("length", SIDES)
def test_axis_runs_follow_the_rule(length):
    for size in AXIS_SIDES:
        for stride in VALUES.stride:
            for repeat in VALUES.repeat:
                starts, run = axis_tiling(length, size, stride, repeat)
                tiles = min(repeat, length // MIN_PERIOD)
                assert starts == tuple(k * length // tiles for k in range(tiles))
                # Runs are 1 .. floor(period) - 1 pixels: never empty, never touching the next tile.
                assert 1 <= run <= length // tiles - 1
                gaps = [b - a for a, b in zip(starts, starts[1:] + (starts[0] + length,))]
                assert all(gap > run for gap in gaps)
                target = Fraction(size, size + stride) * Fraction(length, tiles)
                if 2 * size < size + stride:
                    unclamped = math.ceil(target)
                elif 2 * size > size + stride:
                    unclamped = math.floor(target)
                else:
                    unclamped = min((math.floor(target), math.ceil(target)), key=lambda n: (abs(n - target), n))
                assert run == max(1, min(unclamped, length // tiles - 1))


@pytest.mark.parametrize("length", SIDES)
def test_every_axis_density_stays_in_a_quarter_to_four_fifths(length):
    # The bound behind the band: rounding toward half the period keeps every axis in [1/4, 4/5].
    for size in AXIS_SIDES:
        for stride in VALUES.stride:
            for repeat in VALUES.repeat:
                assert Fraction(1, 4) <= axis_density(length, size, stride, repeat) <= Fraction(4, 5)


@pytest.mark.parametrize("side", SIDES)
def test_every_choice_has_a_density_in_the_band_at_every_resolution(side):
    shapes = [(side, side), (side, max(2, side // 2)), (side, side + 1)]  # square and non-square maps
    for size in VALUES.size:
        for stride in VALUES.stride:
            for repeat in VALUES.repeat:
                pattern = ConvLayerPattern("tile", None, size, stride, repeat, 0, 0.0, 0.0, False, False)
                for height, width in shapes:
                    density = pattern.density(height, width)
                    assert Fraction(1, 16) <= density <= Fraction(16, 25), (pattern, height, width)


def test_large_maps_approach_the_nominal_density():
    # At 64 x 64 every choice is within 0.12 of f_h * f_w (the rounding is at most one pixel of a
    # period of at least 8; measured 0.110), and on average within 0.02 (measured 0.016).
    errors = []
    for (h, w) in VALUES.size:
        for stride in VALUES.stride:
            for repeat in VALUES.repeat:
                nominal = Fraction(h, h + stride) * Fraction(w, w + stride)
                pattern = ConvLayerPattern("tile", None, (h, w), stride, repeat, 0, 0.0, 0.0, False, False)
                errors.append(abs(float(pattern.density(64, 64) - nominal)))
    assert max(errors) < 0.12 and sum(errors) / len(errors) < 0.02


def test_the_densest_tiles_reach_the_top_of_the_band_where_the_map_has_room():
    # Side 4 with stride 1 (4/5 per axis) drops 16/25 of a map whose periods hold a multiple of 5
    # pixels, and at least 0.6 on the CIFAR and ImageNet site maps; on maps of 16 and fewer pixels per
    # side, 4/5 rounds down to 3/4 of a power-of-two period, so those stay at 9/16 as before.
    def densest(side):
        return max(ConvLayerPattern("tile", None, size, stride, repeat, 0, 0.0, 0.0, False, False).density(side, side)
                   for size in VALUES.size for stride in VALUES.stride for repeat in VALUES.repeat)

    assert all(densest(side) == Fraction(16, 25) for side in (5, 10, 15, 20, 40))
    assert all(densest(side) >= Fraction(3, 5) for side in (14, 24, 28, 32, 48, 56, 64))
    assert all(densest(side) == Fraction(9, 16) for side in (4, 8, 16))


def test_sampled_models_of_the_shipped_presets_have_no_no_op_site():
    # Digits WRN-10-2 (16, 8, 4 and 8, 4, 2), CIFAR WRN-28 (32, 16, 8), ImageNet ResNet-50 (56, 28, 14, 7).
    presets = [(16, 8, 4), (8, 4, 2), (32, 16, 8), (56, 28, 14, 7)]
    for sides in presets:
        space = ConvSpace(len(sides))
        for seed in range(500):
            for layer, side in zip(space.decode(space.sample(seed)).layers, sides):
                assert 0 < layer.density(side, side) < 1


def test_one_pixel_axes():
    assert axis_tiling(1, 3, 1, 8) == ((0,), 1)
    pattern = ConvLayerPattern("tile", None, (3, 1), 3, 2, 0, 0.0, 0.0, False, False)
    assert pattern.density(1, 8) == Fraction(2, 8)  # the row axis is covered; 2 one-pixel runs of 8
    assert pattern.density(1, 1) == 1  # nothing to tile: the regularizer refuses 1x1 maps
