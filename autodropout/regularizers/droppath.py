"""Stochastic depth / DropPath (Huang, Sun, Liu, Sedra & Weinberger, ECCV 2016, arXiv 1603.09382),
with timm's ``drop_path`` semantics.

Put it on a residual branch, ``x + drop_path(f(x))``: each sample's whole branch output is dropped with
probability ``p`` (mask of shape (B, 1, ..., 1)) and kept outputs are scaled by 1 / (1 - p) at
training time, so eval mode is the identity (the paper instead scales by the survival probability at
test time; the two agree in expectation).
"""
from __future__ import annotations

from torch import Tensor, nn

from autodropout.core.checks import is_int
from autodropout.regularizers.dropout import check_dims, check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register


def drop_path(x: Tensor, p: float = 0.1, training: bool = True) -> Tensor:
    """Drop whole samples of ``x`` ((B, ...), any rank >= 1) with probability ``p``; same shape out."""
    p = check_rate(p)
    check_dims(x, "droppath", "(B, ...)", min_dim=1)
    if not training or p == 0.0:
        return x
    return x * keep_mask(x, p, range(1, x.dim()))


def droppath_rates(max_rate: float, depth: int) -> list[float]:
    """Per-block drop rates of the paper's linear decay rule, shallow to deep.

    Block ``l = 1..depth`` survives with ``1 - (l / depth) * (1 - p_L)``, i.e. drops with
    ``max_rate * l / depth``: the last block gets ``max_rate`` and the input (l = 0) is never dropped.
    (timm's ``linspace(0, max_rate, depth)`` differs by starting its first block at 0.)
    """
    max_rate = check_rate(max_rate, "max_rate")
    if not is_int(depth, 1):
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    return [max_rate * layer / depth for layer in range(1, depth + 1)]


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (Huang et al., ECCV 2016). Input: (B, ...)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.p = check_rate(p)

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


register(
    RegularizerInfo(
        name="droppath",
        factory=DropPath,
        reference="Huang, Sun, Liu, Sedra & Weinberger, ECCV 2016 (arXiv 1603.09382)",
        rate_param="p",
        identity_params={"p": 0.0},
        example_params={"p": 0.3},
        input_kinds=("conv", "seq", "flat", "heads"),
    )
)
