"""DropConnect (Wan et al. 2013): functional weight masking around Linear / Conv layers."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodropout.regularizers.dropconnect import DropConnect, dropconnect_weight


def test_linear_uses_the_masked_weight_and_unmasked_bias():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    module = DropConnect(layer, p=0.5)
    x = torch.randn(3, 6)
    torch.manual_seed(7)
    masked = dropconnect_weight(layer.weight, 0.5)
    torch.manual_seed(7)
    out = module(x)
    assert torch.equal(out, F.linear(x, masked, layer.bias))
    kept = masked != 0
    assert torch.allclose(masked[kept], layer.weight[kept] * 2.0) and 0 < int(kept.sum()) < 24
    # A zero input sees only the bias, which is never masked.
    assert torch.equal(module(torch.zeros(2, 6)), layer.bias.detach().expand(2, 4))


def test_one_mask_per_batch():
    torch.manual_seed(0)
    module = DropConnect(nn.Linear(16, 16), p=0.5)
    out = module(torch.randn(1, 16).expand(5, 16))
    assert torch.equal(out, out[:1].expand_as(out))


def test_stored_weights_are_never_mutated():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3)
    module = DropConnect(layer, p=0.5)
    before, pointer = layer.weight.detach().clone(), layer.weight.data_ptr()
    module(torch.randn(2, 3, 6, 6)).sum().backward()
    assert torch.equal(layer.weight, before) and layer.weight.data_ptr() == pointer
    assert isinstance(layer.weight, nn.Parameter)


def test_weight_gradient_is_masked_and_scaled():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3, bias=False)
    x = torch.randn(4, 5)
    torch.manual_seed(1)
    masked = dropconnect_weight(layer.weight.detach(), 0.25)
    torch.manual_seed(1)
    DropConnect(layer, p=0.25)(x).sum().backward()
    unmasked_grad = torch.ones(4, 3).T @ x
    assert torch.allclose(layer.weight.grad, unmasked_grad * (masked != 0) / 0.75)


def test_conv_keeps_stride_dilation_groups_and_padding_mode():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="reflect")
    x = torch.randn(2, 4, 9, 9)
    torch.manual_seed(3)
    masked = dropconnect_weight(conv.weight.detach(), 0.4)
    plain = copy.deepcopy(conv)
    plain.weight.data.copy_(masked)
    torch.manual_seed(3)
    assert torch.allclose(DropConnect(conv, p=0.4)(x), plain(x), atol=1e-6)


def test_eval_and_rate_zero_are_the_plain_layer():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(DropConnect(layer, 0.5).eval()(x), layer(x))
    assert torch.equal(DropConnect(layer, 0.0)(x), layer(x))


def test_bfloat16_conv():
    torch.manual_seed(0)
    module = DropConnect(nn.Conv1d(3, 2, 3), p=0.3).to(torch.bfloat16)
    out = module(torch.randn(2, 3, 8, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 2, 6)


def test_unsupported_layers_are_refused():
    class MyLinear(nn.Linear):
        pass

    for bad in (nn.ReLU(), MyLinear(2, 2), nn.ConvTranspose2d(2, 2, 3)):
        with pytest.raises(TypeError, match="dropconnect: module must be one of nn.Linear"):
            DropConnect(bad, p=0.5)
    with pytest.raises(ValueError, match="p must be a probability"):
        DropConnect(nn.Linear(2, 2), p=1.0)
