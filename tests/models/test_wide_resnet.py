"""WideResNet: paper shapes and parameter counts, sites (placement, shapes, residual masking), errors."""
import dataclasses
import functools

import pytest
import torch
from torch import nn

from autodropout import regularizers
from autodropout.models import WideResNet
from autodropout.models.wide_resnet import WideBasicBlock


class Recorder(nn.Module):
    """Identity that logs the shape of every tensor it sees."""

    def __init__(self, log: list, masks_residual: bool = False) -> None:
        super().__init__()
        self.log = log
        self.masks_residual = masks_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(tuple(x.shape[1:]))
        return x


class Zero(nn.Module):
    def __init__(self, masks_residual: bool) -> None:
        super().__init__()
        self.masks_residual = masks_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def wrn_parameter_count(depth: int, width: int, num_classes: int = 10, in_channels: int = 3) -> int:
    """Closed form, independent of the model code: stem, blocks (BN, 3x3, BN, 3x3, 1x1 shortcut when
    the shape changes), final BN and classifier."""
    n = (depth - 4) // 6
    total, c_in = in_channels * 16 * 9, 16
    for c in (16 * width, 32 * width, 64 * width):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c + (c_in * c if c_in != c else 0)
            c_in = c
    return total + 2 * c_in + c_in * num_classes + num_classes


@pytest.mark.parametrize("depth, sites", [(10, 3), (16, 6), (22, 9), (28, 12)])
def test_num_sites(depth, sites):
    assert WideResNet.num_sites_for(depth) == sites
    assert WideResNet(depth, 1, 10).num_sites == sites


@pytest.mark.parametrize("depth", [4, 9, 11, 27, "28", True, 28.0])
def test_bad_depth_is_rejected(depth):
    with pytest.raises(ValueError, match="depth"):
        WideResNet.num_sites_for(depth)


@pytest.mark.parametrize("depth, width, millions", [(28, 10, 36.5), (28, 2, 1.47), (10, 1, None), (16, 2, None)])
def test_parameter_counts_match_the_paper(depth, width, millions):
    count = sum(p.numel() for p in WideResNet(depth, width, 10).parameters())
    assert count == wrn_parameter_count(depth, width)
    if millions is not None:  # the figures quoted by Zagoruyko & Komodakis (2016)
        assert count / 1e6 == pytest.approx(millions, rel=0.005)


def test_forward_backward_without_sites():
    torch.manual_seed(0)
    model = WideResNet(10, 1, num_classes=7)
    logits = model(torch.randn(4, 3, 16, 16))
    assert logits.shape == (4, 7)
    logits.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_dropout_sites_are_stochastic_in_training_and_inactive_in_eval():
    torch.manual_seed(0)
    plain = WideResNet(10, 1, 10, in_channels=1)
    dropped = WideResNet(10, 1, 10, in_channels=1, site_factories=[lambda: nn.Dropout(0.5)] * 3)
    x = torch.randn(4, 1, 16, 16)
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == 3
    dropped.train()
    assert not torch.allclose(dropped(x), dropped(x))
    plain.load_state_dict(dropped.state_dict())  # same weights and BatchNorm statistics
    dropped.eval(), plain.eval()
    torch.testing.assert_close(dropped(x), plain(x), rtol=0, atol=0)


@pytest.mark.parametrize("in_channels, size, stem_stride", [(1, 16, 1), (3, (15, 13), 2), (3, 32, 1)])
def test_sites_see_the_documented_shapes(in_channels, size, stem_stride):
    log: list = []
    model = WideResNet(16, 2, 10, in_channels=in_channels, stem_stride=stem_stride,
                       site_factories=[functools.partial(Recorder, log)] * 6)
    h, w = (size, size) if isinstance(size, int) else size
    model(torch.randn(2, in_channels, h, w)).sum().backward()
    assert log == model.site_shapes(size)
    if (in_channels, size) == (1, 16):  # by hand: 16 -> 16, 8, 4 with 32, 64, 128 channels
        assert log == [(32, 16, 16)] * 2 + [(64, 8, 8)] * 2 + [(128, 4, 4)] * 2
    if size == (15, 13):  # stem stride 2: 8x7, then 8x7, 4x4, 2x2
        assert log == [(32, 8, 7)] * 2 + [(64, 4, 4)] * 2 + [(128, 2, 2)] * 2


def test_none_entries_leave_their_site_empty():
    log: list = []
    model = WideResNet(10, 1, 10, site_factories=[None, functools.partial(Recorder, log), None])
    model(torch.randn(1, 3, 8, 8))
    assert [b.site is None for b in model.blocks] == [True, False, True]
    assert log == [model.site_shapes(8)[1]]


def test_masks_residual_applies_the_site_to_the_shortcut_too():
    log: list = []
    model = WideResNet(10, 1, 10, site_factories=[functools.partial(Recorder, log, masks_residual=True)] * 3)
    model(torch.randn(2, 3, 16, 16))
    # Two calls per block (branch, then shortcut) with the same shape each time.
    assert log == [shape for shape in model.site_shapes(16) for _ in range(2)]


@pytest.mark.parametrize("in_channels, stride", [(4, 1), (4, 2)])
def test_masks_residual_exact_effect(in_channels, stride):
    torch.manual_seed(0)
    x = torch.randn(2, in_channels, 6, 6)
    # Identity shortcut (4 -> 4, stride 1) and a projection shortcut (4 -> 4, stride 2).
    masked = WideBasicBlock(in_channels, 4, stride, Zero(masks_residual=True))
    branch_only = WideBasicBlock(in_channels, 4, stride, Zero(masks_residual=False))
    branch_only.load_state_dict(masked.state_dict())
    # The branch is zeroed before a bias-free conv, so the block's output is the (masked) shortcut.
    assert torch.equal(masked(x), torch.zeros(2, 4, 6 // stride, 6 // stride))
    expected = x if branch_only.shortcut is None else branch_only.shortcut(torch.relu(branch_only.bn1(x)))
    torch.testing.assert_close(branch_only(x), expected)


def test_bfloat16_forward_with_sites():
    torch.manual_seed(0)
    model = WideResNet(10, 1, 10, in_channels=1, site_factories=[lambda: nn.Dropout(0.2)] * 3).to(torch.bfloat16)
    out = model(torch.randn(2, 1, 16, 16, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_kaiming_fan_out_initialisation():
    torch.manual_seed(0)
    model = WideResNet(16, 8, 10)
    conv = model.blocks[1].conv1  # 128 -> 128 channels, 3x3: std sqrt(2 / (9 * 128))
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 128)) ** 0.5, rel=0.02)
    assert torch.equal(model.fc.bias, torch.zeros(10))


def test_site_factory_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"site_factories: WRN-10-1 has 3 sites, got 2"):
        WideResNet(10, 1, 10, site_factories=[None, None])
    with pytest.raises(TypeError, match=r"site_factories\[1\]: expected a zero-argument factory"):
        WideResNet(10, 1, 10, site_factories=[None, 0.1, None])
    with pytest.raises(TypeError, match=r"site_factories\[2\]: the factory returned float"):
        WideResNet(10, 1, 10, site_factories=[None, None, lambda: 0.5])
    with pytest.raises(TypeError, match="site_factories: expected a sequence"):
        WideResNet(10, 1, 10, site_factories=lambda: nn.Dropout(0.1))


def test_other_argument_errors():
    with pytest.raises(ValueError, match="width"):
        WideResNet(10, 0, 10)
    with pytest.raises(ValueError, match="stem_stride"):
        WideResNet(10, 1, 10, stem_stride=0)
    with pytest.raises(ValueError, match="image_size"):
        WideResNet(10, 1, 10).site_shapes((16, 0))
    with pytest.raises(ValueError, match=r"x: expected images of shape \(B, 3, H, W\)"):
        WideResNet(10, 1, 10)(torch.randn(1, 1, 8, 8))


CONV_REGULARIZERS = [n for n in regularizers.available() if "conv" in regularizers.info(n).input_kinds]


@pytest.mark.parametrize("name", CONV_REGULARIZERS)
def test_every_conv_regularizer_of_the_registry_fits_every_site(name):
    torch.manual_seed(0)
    params = dict(regularizers.info(name).example_params)
    # Methods with learned parts (e.g. targetdrop's attention) are built for the site's channels.
    sized = "channels" in regularizers.info(name).parameters
    shapes = WideResNet(10, 1, 10).site_shapes(8)
    factories = [functools.partial(regularizers.create, name, **{**params, **({"channels": c} if sized else {})})
                 for c, _, _ in shapes]
    model = WideResNet(10, 1, 10, in_channels=1, site_factories=factories)
    x = torch.randn(4, 1, 8, 8)
    model(x).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    plain = WideResNet(10, 1, 10, in_channels=1)
    plain.load_state_dict(model.state_dict(), strict=False)
    model.eval(), plain.eval()
    torch.testing.assert_close(model(x), plain(x))  # every regularizer is the identity in eval mode


def test_learned_conv_pattern_with_residual_masks_the_shortcut():
    pattern = dataclasses.replace(regularizers.info("conv_pattern").example_params["pattern"], residual=True)
    log: list = []

    def factory() -> nn.Module:
        site = regularizers.create("conv_pattern", pattern=pattern)
        site.register_forward_hook(lambda module, args, out: log.append(tuple(out.shape[1:])))
        return site

    model = WideResNet(10, 1, 10, site_factories=[factory] * 3)
    assert all(block.site.masks_residual for block in model.blocks)
    model(torch.randn(2, 3, 16, 16))
    assert log == [shape for shape in model.site_shapes(16) for _ in range(2)]
