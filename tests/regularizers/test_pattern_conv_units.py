"""Learned ConvNet patterns of the non-tile units (format version 3): element, channel and sample
masks drop at their rate, are exactly rescaled, span the right axes, mask the shortcut with
``residual``, are the identity in eval mode, and are the regularizers they stand for."""
import dataclasses

import pytest
import torch

from autodropout.models.wide_resnet import WideBasicBlock
from autodropout.regularizers.droppath import drop_path
from autodropout.regularizers.pattern_conv import SHARED_AXES, ConvPatternDropout, conv_pattern, conv_pattern_mask
from autodropout.regularizers.spatial import spatial_dropout
from autodropout.search_spaces import ConvLayerPattern

UNITS = ("element", "channel", "sample")
#: The geometry fields a non-tile unit ignores, at their first default choice (as the space forces).
LAYER = ConvLayerPattern(unit="element", rate=0.3, size=(1, 1), stride=1, repeat=1, rotate=0, shear_x=-0.3,
                         shear_y=-0.3, share_c=False, residual=False)
SHAPE = (4096, 8, 4, 4)
#: Independent keep bits of one SHAPE mask, per unit.
BITS = {"element": 4096 * 8 * 4 * 4, "channel": 4096 * 8, "sample": 4096}
MASK_SHAPES = {"element": SHAPE, "channel": (4096, 8, 1, 1), "sample": (4096, 1, 1, 1)}


def layer(unit: str, rate: float = 0.3, **changes) -> ConvLayerPattern:
    return dataclasses.replace(LAYER, unit=unit, rate=rate, **changes)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("rate", [0.02, 0.3, 0.46, 0.7])
def test_each_unit_drops_its_rate_and_rescales_kept_values_exactly(unit, rate):
    mask = conv_pattern_mask(SHAPE, layer(unit, rate), generator=seeded(int(rate * 100)), dtype=torch.float64)
    assert mask.shape == MASK_SHAPES[unit]
    # Fixed seed; 5 binomial standard errors of the drop fraction over the mask's independent bits
    # (0.0039 for whole samples at rate 0.46, 0.00035 for elements).
    dropped = (mask == 0).double().mean().item()
    assert abs(dropped - rate) <= 5 * (rate * (1 - rate) / BITS[unit]) ** 0.5
    assert set(mask.unique().tolist()) == {0.0, 1 / (1 - rate)}
    # E[m] = (1 - rate) / (1 - rate) = 1 exactly; the sampled mean is within 5 standard errors of it.
    assert abs(mask.mean().item() - 1) <= 5 * (rate / (1 - rate) / BITS[unit]) ** 0.5
    assert float(layer(unit, rate).density(4, 4)) == rate


@pytest.mark.parametrize("unit", UNITS)
def test_module_output_is_unbiased_over_many_draws(unit):
    # 2000 draws of a (2, 3, 4, 4) input: the mean output is within 5 standard errors of x everywhere.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    module = ConvPatternDropout(layer(unit, 0.46))
    mean = torch.stack([module(x) for _ in range(2000)]).mean(0)
    tolerance = 5 * (0.46 / 0.54 / 2000) ** 0.5 * x.abs()
    assert bool(((mean - x).abs() <= tolerance).all())


@pytest.mark.parametrize("unit", UNITS)
def test_masks_are_constant_exactly_over_the_axes_their_unit_spans(unit):
    x = torch.randn(64, 8, 6, 6, dtype=torch.float64)
    ratio = conv_pattern(x, layer(unit, 0.5), generator=seeded(1)) / x
    axes = SHARED_AXES[unit]
    if axes:
        assert torch.equal(ratio.amin(dim=axes), ratio.amax(dim=axes))
    # Along the other axes the bits are independent: masks are neither all kept nor all dropped.
    per_sample = ratio.flatten(1)
    if unit == "sample":
        assert 0 < (per_sample[:, 0] == 0).sum() < 64
    else:
        mixed = (per_sample == 0).any(1) & (per_sample != 0).any(1)
        assert bool(mixed.all())
    if unit == "element":
        per_channel = ratio.flatten(2)
        assert bool(((per_channel == 0).any(2) & (per_channel != 0).any(2)).all())


def test_the_units_are_the_regularizers_they_stand_for():
    # Same global seed, same draws: a channel pattern is spatial dropout, a sample pattern DropPath.
    x = torch.randn(16, 8, 4, 4)
    for unit, reference in (("channel", spatial_dropout), ("sample", drop_path)):
        torch.manual_seed(5)
        ours = ConvPatternDropout(layer(unit, 0.3))(x)
        torch.manual_seed(5)
        assert torch.equal(ours, reference(x, 0.3)), unit


@pytest.mark.parametrize("unit", UNITS)
def test_residual_masks_the_shortcut_with_an_independent_draw_of_the_same_unit(unit):
    site = ConvPatternDropout(layer(unit, 0.5, residual=True))
    calls = []
    site.register_forward_hook(lambda module, args, out: calls.append((args[0], out)))
    block = WideBasicBlock(8, 8, 1, site).train()
    x = torch.randn(32, 8, 4, 4)
    block(x)
    assert len(calls) == 2 and torch.equal(calls[1][0], x)  # the identity shortcut, masked second
    ratios = [out / inp for inp, out in calls]
    for ratio in ratios:
        assert set(ratio.unique().tolist()) <= {0.0, 2.0}
        if SHARED_AXES[unit]:
            assert torch.equal(ratio.amin(dim=SHARED_AXES[unit]), ratio.amax(dim=SHARED_AXES[unit]))
    assert not torch.equal(ratios[0], ratios[1])


@pytest.mark.parametrize("unit", UNITS)
def test_eval_mode_is_the_identity_and_rate_zero_keeps_everything(unit):
    x = torch.randn(2, 3, 4, 4)
    assert ConvPatternDropout(layer(unit)).eval()(x) is x
    assert conv_pattern(x, layer(unit), training=False) is x
    assert torch.equal(ConvPatternDropout(layer(unit, 0.0))(x), x)


@pytest.mark.parametrize("unit", UNITS)
def test_one_pixel_maps_are_masked_as_usual(unit):
    # Only tiles need 2 pixels; a 1x1 map is an ordinary activation for the other units.
    out = conv_pattern(torch.ones(256, 4, 1, 1), layer(unit, 0.5), generator=seeded(2))
    assert 0 < (out == 0).sum() < out.numel()


@pytest.mark.parametrize("unit", UNITS)
def test_masks_follow_the_input_device_and_dtype_and_the_gradient_is_the_mask(unit):
    out = conv_pattern(torch.empty(2, 3, 8, 8, device="meta"), layer(unit))
    assert out.device.type == "meta" and out.shape == (2, 3, 8, 8)
    assert conv_pattern(torch.randn(2, 3, 4, 4).to(torch.bfloat16), layer(unit)).dtype == torch.bfloat16
    x = torch.randn(4, 3, 4, 4, requires_grad=True)
    conv_pattern(x, layer(unit), generator=seeded(3)).sum().backward()
    assert torch.equal(x.grad, conv_pattern_mask(x.shape, layer(unit), generator=seeded(3)).expand_as(x))


def test_offsets_belong_to_tiles_only():
    with pytest.raises(ValueError, match="offsets: only tile patterns have offsets, this one has unit 'channel'"):
        conv_pattern_mask((1, 1, 4, 4), layer("channel"), offsets=torch.zeros(1, 1, 2, dtype=torch.long))


def test_repr_names_the_unit_and_rate():
    assert repr(ConvPatternDropout(layer("sample", 0.14, residual=True))) == (
        "ConvPatternDropout(unit='sample', rate=0.14, residual=True)"
    )
