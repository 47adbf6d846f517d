"""Elementwise inverted dropout (Srivastava et al., JMLR 2014), plus the mask helpers that the
other Bernoulli-mask methods of this package build on.

Training: ``out = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` iid per element; eval mode and
``p = 0`` are the identity. Any shape.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodropout.core.checks import is_real
from autodropout.regularizers.registry import RegularizerInfo, register


def check_rate(value: float, name: str = "p") -> float:
    """``value`` as a float if it is a drop probability in [0, 1); otherwise a ``ValueError`` naming
    ``name``. A rate of 1 is refused: inverted scaling would divide by zero."""
    if not is_real(value, 0.0, 1.0, high_open=True):
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def keep_mask(
    x: Tensor, p: float, shared_dims: Sequence[int] = (), generator: torch.Generator | None = None
) -> Tensor:
    """Inverted-dropout multiplier ``m / (1 - p)``, ``m ~ Bernoulli(1 - p)``.

    The mask has ``x``'s shape with size 1 along ``shared_dims`` (so one draw is broadcast over those
    axes), and ``x``'s device and dtype. Made under ``no_grad``: it is a constant for autograd.
    ``generator`` (on ``x``'s device) draws it; torch's global generator by default.
    """
    keep = 1.0 - p
    dims = {d % x.dim() for d in shared_dims}
    shape = [1 if d in dims else size for d, size in enumerate(x.shape)]
    with torch.no_grad():
        return x.new_empty(shape).bernoulli_(keep, generator=generator).div_(keep)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout of ``x`` (any shape) with drop probability ``p``; same shape out."""
    p = check_rate(p)
    if not training or p == 0.0:
        return x
    # PyTorch's own kernel: the same Bernoulli draws as keep_mask, without the extra pass.
    return F.dropout(x, p, training=True)


class Dropout(nn.Module):
    """Module form of :func:`dropout` (Srivastava et al., JMLR 2014). Input: any shape."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_rate(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def check_dims(x: Tensor, name: str, layout: str, min_dim: int, max_dim: int | None = None) -> None:
    """Raise a ``ValueError`` naming the method ``name`` and the expected ``layout`` unless
    ``min_dim <= x.dim() <= max_dim``."""
    if x.dim() < min_dim or (max_dim is not None and x.dim() > max_dim):
        raise ValueError(f"{name}: expected input of shape {layout}, got shape {tuple(x.shape)}")


register(
    RegularizerInfo(
        name="dropout",
        factory=Dropout,
        reference="Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov, JMLR 2014",
        rate_param="p",
        identity_params={"p": 0.0},
        example_params={"p": 0.3},
        input_kinds=("conv", "seq", "flat", "heads"),
    )
)
