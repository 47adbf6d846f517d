"""Learned ConvNet patterns: exact geometry (format version 2, tiles relative to the map) on
hand-computed maps, rescaling and unbiasedness, randomness, API."""
import dataclasses
import random

import pytest
import torch

import autodropout.regularizers as regs
from autodropout.regularizers.pattern_conv import (
    ConvPatternDropout,
    conv_pattern,
    conv_pattern_mask,
    conv_site_factories,
)
from autodropout.search_spaces import ConvLayerPattern, ConvSpace, TransformerSpace

BASE = ConvLayerPattern(
    unit="tile", rate=None, size=(2, 3), stride=1, repeat=2, rotate=0, shear_x=0.0, shear_y=0.0, share_c=False,
    residual=False,
)
# On 8x8: 2 tiles per axis, period 4 pixels, starts 0 and 4 from the offset.
# Rows: f = 2/3 of 4 = 2.67 pixels, rounded down (f > 1/2) to runs of 2 -> from row offset 5: {5, 6, 1, 2}.
# Cols: f = 3/4 of 4 = 3 pixels -> runs of 3 from col offset 6: {6, 7, 0, 2, 3, 4} (wrapping).
BASE_OFFSET = (5, 6)
BASE_DROPPED = torch.tensor(
    [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 1, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 1, 0, 1, 1],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 1, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 1, 0, 1, 1],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=torch.bool,
)


def one_mask(pattern, offset, hw=(8, 8), dtype=torch.float64):
    """The (H, W) multiplier of a single map with a fixed (row, col) offset."""
    offsets = torch.tensor([[offset]])
    return conv_pattern_mask((1, 1, *hw), pattern, offsets=offsets, dtype=dtype)[0, 0]


def all_offset_masks(pattern, hw):
    """(H*W, H, W): the multiplier for every possible offset, in float64."""
    h, w = hw
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).reshape(-1, 1, 2)
    masks = conv_pattern_mask((h * w, 1, h, w), dataclasses.replace(pattern, share_c=True), offsets=grid,
                              dtype=torch.float64)
    return masks[:, 0]


def test_tiling_is_exact_and_wraps_around_the_border():
    mask = one_mask(BASE, BASE_OFFSET)
    assert torch.equal(mask == 0, BASE_DROPPED)


@pytest.mark.parametrize(
    ("size", "stride", "repeat", "hw", "rows", "cols"),
    [
        # 5x5, one tile: f = 3/4 of 5 = 3.75 rounds down to 3; f = 1/2 of 5 = 2.5 rounds to 2 (ties down).
        ((3, 1), 1, 1, (5, 5), [0, 1, 2], [0, 1]),
        # f = 1/4 of 5 = 1.25 rounds up to 2: rounding goes toward half the period, never away from it.
        ((1, 1), 3, 1, (5, 5), [0, 1], [0, 1]),
        # 7 rows, 2 tiles: period 3.5, starts 0 and 3; f = 3/4 -> 2.625 down to 2.
        # 5 cols, 2 tiles: period 2.5, starts 0 and 2; f = 1/2 -> 1.25 to 1 (at most period - 1 anyway).
        ((3, 1), 1, 2, (7, 5), [0, 1, 3, 4], [0, 2]),
        # repeat 8 on 6 pixels is capped at 6 // 2 = 3 tiles of period 2: one pixel each, whatever f is.
        ((3, 3), 1, 8, (6, 6), [0, 2, 4], [0, 2, 4]),
        # 2x2, the smallest map: one tile of period 2 per axis, one pixel dropped.
        ((3, 3), 1, 4, (2, 2), [0], [0]),
        # A 1-pixel axis is one run covering it: a 1 x 8 map gets stripes along its width only.
        ((1, 1), 3, 2, (1, 8), [0], [0, 4]),
    ],
)
def test_hand_computed_runs_rounding_and_caps(size, stride, repeat, hw, rows, cols):
    pattern = dataclasses.replace(BASE, size=size, stride=stride, repeat=repeat)
    mask = one_mask(pattern, (0, 0), hw=hw)
    dropped = torch.zeros(hw, dtype=torch.bool)
    dropped[torch.tensor(rows).unsqueeze(1), torch.tensor(cols).unsqueeze(0)] = True
    assert torch.equal(mask == 0, dropped)
    density = len(rows) / hw[0] * len(cols) / hw[1]
    assert float(pattern.density(*hw)) == pytest.approx(density, abs=1e-15)
    assert torch.all(mask[~dropped] == 1 / (1 - density))


def test_the_cap_makes_large_repeats_synonyms_not_no_ops():
    capped = one_mask(dataclasses.replace(BASE, repeat=8), (1, 2), hw=(4, 4))
    assert torch.equal(capped, one_mask(dataclasses.replace(BASE, repeat=2), (1, 2), hw=(4, 4)))
    assert (capped == 0).any() and (capped != 0).any()


def test_kept_values_are_rescaled_by_the_inverse_keep_rate():
    mask = one_mask(BASE, BASE_OFFSET)
    # Density (4/8 rows) * (6/8 cols) = 3/8; unrotated, so this equals numel / sum(mask != 0).
    assert torch.all(mask[~BASE_DROPPED] == 1 / (1 - 3 / 8))
    assert mask[~BASE_DROPPED].unique().item() == pytest.approx(64 / (~BASE_DROPPED).sum().item())


@pytest.mark.parametrize("offset", [(0, 0), (5, 6), (3, 1)])
def test_rotate_90_is_rot90_of_the_unrotated_mask(offset):
    rotated = one_mask(dataclasses.replace(BASE, rotate=90), offset)
    assert torch.equal(rotated, torch.rot90(one_mask(BASE, offset), 1, dims=(0, 1)))


def test_rotate_180_is_the_unrotated_mask_flipped_both_ways():
    rotated = one_mask(dataclasses.replace(BASE, rotate=180), BASE_OFFSET)
    assert torch.equal(rotated, torch.flip(one_mask(BASE, BASE_OFFSET), dims=(0, 1)))


# Output row i reads source column j - 0.3 * (i - 3.5), rounded half up: +1.05, +0.75, +0.45, ...
SHEAR_SHIFTS = [1, 1, 0, 0, 0, 0, -1, -1]


def test_shear_x_shifts_each_row_by_the_expected_amount():
    sheared = one_mask(dataclasses.replace(BASE, shear_x=0.3), BASE_OFFSET)
    plain = one_mask(BASE, BASE_OFFSET)
    for i, shift in enumerate(SHEAR_SHIFTS):
        assert torch.equal(sheared[i], torch.roll(plain[i], -shift)), f"row {i}"


def test_shear_y_shifts_each_column_by_the_expected_amount():
    sheared = one_mask(dataclasses.replace(BASE, shear_y=0.3), BASE_OFFSET)
    plain = one_mask(BASE, BASE_OFFSET)
    for j, shift in enumerate(SHEAR_SHIFTS):
        assert torch.equal(sheared[:, j], torch.roll(plain[:, j], -shift)), f"column {j}"


TRANSFORMED = [
    ConvLayerPattern("tile", None, (2, 2), 2, 2, 30, 0.15, 0.0, False, False),
    ConvLayerPattern("tile", None, (3, 5), 1, 3, 45, -0.3, 0.3, False, False),
    ConvLayerPattern("tile", None, (1, 2), 3, 4, 75, 0.3, -0.15, False, False),
]


@pytest.mark.parametrize("pattern", TRANSFORMED)
@pytest.mark.parametrize("hw", [(8, 8), (7, 5)])
def test_every_pixel_is_dropped_with_the_pattern_density_and_output_is_exactly_unbiased(pattern, hw):
    masks = all_offset_masks(pattern, hw)
    keep_value = masks.max().item()
    # Over the uniform offset, each pixel is dropped with probability d = 1 - 1 / keep_value.
    drop_rate = (masks == 0).double().mean(0)
    assert torch.allclose(drop_rate, torch.full(hw, 1 - 1 / keep_value, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(masks.mean(0), torch.ones(hw, dtype=torch.float64), atol=1e-12)


def test_share_c_draws_one_mask_for_all_channels():
    pattern = dataclasses.replace(TRANSFORMED[0], share_c=True)
    g = torch.Generator().manual_seed(0)
    mask = conv_pattern_mask((4, 16, 8, 8), pattern, generator=g)
    assert mask.shape == (4, 1, 8, 8)
    out = conv_pattern(torch.ones(4, 16, 8, 8), pattern, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, mask.expand(4, 16, 8, 8))


def test_per_channel_masks_differ_and_drop_at_the_geometric_rate():
    pattern = TRANSFORMED[0]  # (2, 2) runs every 4 pixels, twice, on 8x8: density 1/2 * 1/2
    g = torch.Generator().manual_seed(0)
    mask = conv_pattern_mask((128, 8, 8, 8), pattern, generator=g)
    assert mask.shape == (128, 8, 8, 8)
    differ = (mask != mask[:, :1]).flatten(2).any(-1)  # (B, C): channel differs from channel 0
    assert differ[:, 1:].float().mean() > 0.8
    # Per channel, 128 maps of 64 pixels: over seeds the drop fraction's spread is about 0.003.
    per_channel = (mask == 0).double().mean(dim=(0, 2, 3))
    assert torch.allclose(per_channel, torch.full((8,), 0.25, dtype=torch.float64), atol=0.015)


@pytest.mark.parametrize("hw", [(2, 2), (2, 3), (3, 3), (4, 4), (1, 2)])
def test_the_largest_tiles_never_cover_a_small_map(hw):
    # Version 1 fell back to the identity here (a 5x5 tile covered a 4x4 map). Now every offset of
    # the densest default choice drops some pixels and keeps others, rescaled by the exact density.
    densest = dataclasses.replace(BASE, size=(3, 3), stride=1, repeat=1)
    masks = all_offset_masks(densest, hw)
    dropped = (masks == 0).flatten(1)
    assert dropped.any(1).all() and (~dropped).any(1).all()
    assert torch.allclose(masks.mean(0), torch.ones(hw, dtype=torch.float64), atol=1e-12)


def test_a_1x1_map_is_an_error_not_a_silent_identity():
    with pytest.raises(ValueError, match="a 1x1 map cannot be masked"):
        conv_pattern(torch.ones(2, 3, 1, 1), BASE)
    with pytest.raises(ValueError, match="a 1x1 map cannot be masked"):
        ConvPatternDropout(BASE)(torch.ones(2, 3, 1, 1))


def test_seeded_generator_is_deterministic():
    def draw(seed):
        return conv_pattern_mask((3, 4, 8, 8), TRANSFORMED[1], generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_gradient_is_the_mask():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    conv_pattern(x, TRANSFORMED[0], generator=torch.Generator().manual_seed(3)).sum().backward()
    expected = conv_pattern_mask(x.shape, TRANSFORMED[0], generator=torch.Generator().manual_seed(3))
    assert torch.equal(x.grad, expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_mask_and_output_follow_the_input_dtype(dtype):
    x = torch.randn(2, 3, 8, 8).to(dtype)
    mask = conv_pattern_mask(x.shape, BASE, dtype=dtype, offsets=torch.tensor([[BASE_OFFSET] * 3] * 2))
    assert mask.dtype == dtype
    assert torch.equal(mask[1, 2] == 0, BASE_DROPPED)
    assert conv_pattern(x, BASE).dtype == dtype


def test_mask_is_made_on_the_input_device():
    # The meta device fails on any tensor created elsewhere, like a CUDA input would.
    for share_c in (False, True):
        x = torch.empty(2, 3, 8, 8, device="meta")
        out = conv_pattern(x, dataclasses.replace(TRANSFORMED[1], share_c=share_c))
        assert out.device.type == "meta" and out.shape == x.shape


def test_eval_mode_and_none_pattern_are_the_identity():
    x = torch.randn(2, 3, 8, 8)
    module = ConvPatternDropout(BASE).eval()
    assert module(x) is x
    assert ConvPatternDropout(None)(x) is x
    assert conv_pattern(x, BASE, training=False) is x


def test_module_applies_the_pattern_and_exposes_residual():
    module = ConvPatternDropout(dataclasses.replace(BASE, residual=True))
    assert module.masks_residual is True
    assert ConvPatternDropout(BASE).masks_residual is False
    assert ConvPatternDropout(None).masks_residual is False
    out = module(torch.ones(2, 3, 8, 8))
    # Every map is a translate of BASE's mask on the torus: 24 of 64 pixels dropped.
    assert torch.equal((out == 0).sum(dim=(2, 3)), torch.full((2, 3), 24))
    assert "unit='tile', size=(2, 3)" in repr(module) and "residual=True" in repr(module)


def test_registry_entry():
    entry = regs.info("conv_pattern")
    assert entry.rate_param is None and entry.input_kinds == ("conv",)
    assert isinstance(regs.create("conv_pattern", **entry.example_params), ConvPatternDropout)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(regs.create("conv_pattern", **entry.identity_params)(x), x)


def test_site_factories_build_one_module_per_site():
    space = ConvSpace(num_sites=3)
    pattern = space.decode(space.sample(0))
    factories = conv_site_factories(pattern)
    assert len(factories) == 3
    modules = [make() for make in factories]
    assert all(isinstance(m, ConvPatternDropout) for m in modules)
    assert [m.pattern for m in modules] == list(pattern.layers)
    from_list = [make() for make in conv_site_factories(list(pattern.layers))]
    assert [m.pattern for m in from_list] == list(pattern.layers)


def test_site_factories_reject_other_spaces():
    transformer = TransformerSpace(num_sites=1)
    with pytest.raises(ValueError, match="pattern: expected a 'conv' Pattern"):
        conv_site_factories(transformer.decode(transformer.sample(0)))
    with pytest.raises(TypeError, match="site 1 is a str"):
        conv_site_factories([BASE, "x"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": (0, 3)}, r"pattern\.size: expected a \(height, width\) pair"),
        ({"size": 3}, r"pattern\.size"),
        ({"stride": 0}, r"pattern\.stride: expected an int >= 1"),
        ({"repeat": 1.5}, r"pattern\.repeat"),
        ({"rotate": float("nan")}, r"pattern\.rotate: expected a finite number"),
        ({"shear_x": 1.0, "shear_y": 1.0}, r"shear_x \* shear_y must not be 1"),
        ({"share_c": 1}, r"pattern\.share_c: expected a bool"),
        ({"unit": "pixel"}, r"pattern\.unit: expected one of \['tile', 'element', 'channel', 'sample'\], got 'pixel'"),
        ({"rate": 0.3}, r"pattern\.rate: a tile pattern takes None \(its tiles set the density\), got 0\.3"),
        ({"unit": "element"}, r"pattern\.rate \(unit 'element'\) must be a probability in \[0, 1\), got None"),
        ({"unit": "sample", "rate": 1.0}, r"pattern\.rate \(unit 'sample'\) must be a probability in \[0, 1\), got 1"),
    ],
)
def test_bad_pattern_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ConvPatternDropout(dataclasses.replace(BASE, **changes))


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="pattern: expected a ConvLayerPattern"):
        ConvPatternDropout({"size": (2, 3)})
    with pytest.raises(ValueError, match=r"x: conv_pattern expects \(B, C, H, W\)"):
        conv_pattern(torch.randn(2, 3, 8), BASE)
    with pytest.raises(ValueError, match=r"offsets: expected an integer tensor of shape \(2, 3, 2\)"):
        conv_pattern_mask((2, 3, 8, 8), BASE, offsets=torch.zeros(2, 1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="offsets: expected an integer tensor"):
        conv_pattern_mask((1, 1, 8, 8), BASE, offsets=torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match=r"offsets: \(row, col\) values must lie in \[0, 8\) x \[0, 5\)"):
        conv_pattern_mask((1, 1, 8, 5), BASE, offsets=torch.tensor([[[0, 5]]]))


DEFAULTS = ConvSpace(1).values
GEOMETRIES = [(size, stride, repeat)
              for size in DEFAULTS.size for stride in DEFAULTS.stride for repeat in DEFAULTS.repeat]


@pytest.mark.parametrize("hw", [(2, 2), (3, 5), (4, 4), (7, 7), (8, 8), (14, 14), (16, 16)])
def test_every_default_choice_is_exactly_unbiased_with_random_rotation_and_shear(hw):
    # Exact, not sampled: over all H * W offsets every pixel is dropped with probability exactly the
    # pattern's density (0 < d < 1) and the multiplier averages exactly 1, for all 192
    # (size, stride, repeat) choices, each with a rotation and shear drawn from the default values.
    rng = random.Random(hw[0] * 100 + hw[1])
    for size, stride, repeat in GEOMETRIES:
        pattern = ConvLayerPattern("tile", None, size, stride, repeat, rng.choice(DEFAULTS.rotate),
                                   rng.choice(DEFAULTS.shear_x), rng.choice(DEFAULTS.shear_y), False, False)
        density = float(pattern.density(*hw))
        assert 0 < density < 1
        masks = all_offset_masks(pattern, hw)
        drop_rate = (masks == 0).double().mean(0)
        assert torch.allclose(drop_rate, torch.full(hw, density, dtype=torch.float64), atol=1e-12), pattern
        assert torch.allclose(masks.mean(0), torch.ones(hw, dtype=torch.float64), atol=1e-12), pattern


@pytest.mark.parametrize("side", [4, 8, 16, 32])
def test_sampled_masks_drop_the_documented_density(side):
    # Monte Carlo through the module path: 20 seeded patterns of the default space per resolution,
    # 256 samples of 4 channels each. The mean drop fraction must be within 5 standard errors of d,
    # taken from the spread of the 256 independent per-sample fractions (0 for unrotated patterns,
    # whose every map drops exactly d).
    space = ConvSpace(1)
    torch.manual_seed(side)
    for seed in range(20):
        pattern = space.decode(space.sample(seed)).layers[0]
        density = float(pattern.density(side, side))
        out = ConvPatternDropout(pattern)(torch.ones(256, 4, side, side))
        fractions = (out == 0).double().mean(dim=(1, 2, 3))
        tolerance = 5 * fractions.std().item() / fractions.numel() ** 0.5 + 1e-12
        assert abs(fractions.mean().item() - density) <= tolerance, (pattern, fractions.mean().item(), density)
        assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - density)))
