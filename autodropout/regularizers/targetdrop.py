"""TargetDrop (Zhu & Zhao, arXiv 2010.10716, 2020): drop a block around the strongest activation of
the channels a channel attention ranks highest, rather than at random places.

For input (B, C, H, W), in training mode:

1. Channel attention, SE-style: ``M = sigmoid(W1 relu(W0 GAP(x)))`` with a C -> max(C // r, 4) -> C
   bias-free MLP (the unofficial reference ``bobo0810/TargetDrop``: 1x1 convs without bias, Kaiming
   init).
2. Per sample, the ``K = floor(gamma * C)`` channels with the largest attention are the targets.
3. In each target map, a ``k x k`` zero block at its argmax ``(a, b)``: rows ``a - k//2 ..
   a - k//2 + k - 1`` (for odd k centred on a), columns likewise, clipped at the borders.
4. Each target map is rescaled by ``H W / (number of kept positions)``; other channels are unchanged.

Eval mode and ``K = 0`` (e.g. ``gamma = 0``) are the identity. There is no randomness: given the
input and the attention weights the output is fixed, so TargetDrop is not unbiased in expectation.

Open issue (spec section 3), option (a) chosen: top-k and argmax are not differentiable, so in the
reference code the SE weights never receive a gradient and stay a fixed random projection of the
channel means. We replicate that and say so in the code: the SE weights are **buffers** (saved in the
state dict and moved by ``.to()``, but not trained and never touched by an optimizer or weight decay),
drawn from the global torch RNG at construction. :func:`targetdrop` takes the attention as an argument,
so a model can instead pass the scores of its own (trained) SE block (option (b)).

``channels`` is required, not inferred lazily, so that the weights exist, with their device and dtype,
before the optimizer and any checkpoint loading see the module.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from autodropout.core.checks import is_int, is_real
from autodropout.regularizers.dropout import check_dims
from autodropout.regularizers.registry import RegularizerInfo, register


def _check_gamma(gamma: float) -> float:
    if not is_real(gamma, 0.0, 1.0):
        raise ValueError(f"gamma must be a fraction of channels in [0, 1], got {gamma!r}")
    return float(gamma)


def _check_positive_int(value: int, name: str) -> int:
    if not is_int(value, 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def num_targets(gamma: float, channels: int) -> int:
    """``floor(gamma * channels)``, robust to float rounding (0.29 * 100 is 28.999...)."""
    return math.floor(gamma * channels + 1e-9)


def targetdrop(
    x: Tensor, attention: Tensor, gamma: float = 0.15, block_size: int = 5, training: bool = True
) -> Tensor:
    """TargetDrop of ``x`` (B, C, H, W) given channel scores ``attention`` (B, C); same shape out."""
    gamma = _check_gamma(gamma)
    block_size = _check_positive_int(block_size, "block_size")
    check_dims(x, "targetdrop", "(B, C, H, W)", min_dim=4, max_dim=4)
    batch, channels, height, width = x.shape
    if attention.shape != (batch, channels):
        raise ValueError(
            f"targetdrop: attention must have shape (B, C) = {(batch, channels)}, "
            f"got {tuple(attention.shape)}"
        )
    k = num_targets(gamma, channels)
    if not training or k == 0 or x.numel() == 0:
        return x
    with torch.no_grad():
        targets = attention.topk(k, dim=1).indices[:, :, None, None].expand(-1, -1, height, width)
        peak = x.gather(1, targets).flatten(2).argmax(dim=-1)
        top, left = peak // width - block_size // 2, peak % width - block_size // 2
        rows = torch.arange(height, device=x.device)
        cols = torch.arange(width, device=x.device)
        in_rows = (rows >= top[..., None]) & (rows < top[..., None] + block_size)
        in_cols = (cols >= left[..., None]) & (cols < left[..., None] + block_size)
        block = in_rows[..., :, None] & in_cols[..., None, :]
        kept = height * width - in_rows.sum(-1) * in_cols.sum(-1)
        scale = (height * width / kept.clamp_min(1)).to(x.dtype)
        target_mask = torch.where(block, torch.zeros((), dtype=x.dtype, device=x.device),
                                  scale[..., None, None])
        mask = torch.ones_like(x).scatter_(1, targets, target_mask)
    return x * mask


class TargetDrop(nn.Module):
    """TargetDrop with its own fixed SE attention (Zhu & Zhao, arXiv 2010.10716). Input (B, C, H, W).

    Args:
        channels: C, the input's channel count.
        gamma: fraction of channels targeted per sample (the rate parameter).
        block_size: side k of the dropped block.
        reduction: SE reduction r; the hidden width is ``max(channels // reduction, 4)``.
    """

    se_reduce: Tensor
    se_expand: Tensor

    def __init__(
        self, channels: int, gamma: float = 0.15, block_size: int = 5, reduction: int = 16
    ) -> None:
        super().__init__()
        self.channels = _check_positive_int(channels, "channels")
        self.gamma = _check_gamma(gamma)
        self.block_size = _check_positive_int(block_size, "block_size")
        self.reduction = _check_positive_int(reduction, "reduction")
        hidden = max(self.channels // self.reduction, 4)
        self.register_buffer("se_reduce", nn.init.kaiming_normal_(torch.empty(hidden, channels)))
        self.register_buffer("se_expand", nn.init.kaiming_normal_(torch.empty(channels, hidden)))

    def attention(self, x: Tensor) -> Tensor:
        """SE channel attention of ``x`` (B, C, H, W): (B, C) in (0, 1)."""
        check_dims(x, "targetdrop", "(B, C, H, W)", min_dim=4, max_dim=4)
        if x.shape[1] != self.channels:
            raise ValueError(
                f"targetdrop: built for channels={self.channels}, got input of shape {tuple(x.shape)}"
            )
        with torch.no_grad():
            pooled = x.mean(dim=(2, 3)).to(self.se_reduce.dtype)
            return torch.sigmoid(torch.relu(pooled @ self.se_reduce.T) @ self.se_expand.T)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or num_targets(self.gamma, self.channels) == 0:
            return x
        return targetdrop(x, self.attention(x), self.gamma, self.block_size)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, gamma={self.gamma}, block_size={self.block_size}, "
            f"reduction={self.reduction}"
        )


register(
    RegularizerInfo(
        name="targetdrop",
        factory=TargetDrop,
        reference="Zhu & Zhao, arXiv 2020 (arXiv 2010.10716)",
        rate_param="gamma",
        identity_params={"gamma": 0.0},
        example_params={"channels": 8, "gamma": 0.25, "block_size": 3},
        input_kinds=("conv",),
        unbiased=False,
        zeros_rate=False,
    )
)
