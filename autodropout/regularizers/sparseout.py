"""Sparseout (Khan & Stavness, Canadian AI 2019, arXiv 1904.08050): dropout noise scaled by a power
of the activation, which acts as an L_q penalty on the activations.

Training, with ``m ~ Bernoulli(1 - p)`` iid per element and ``xi = m / (1 - p) - 1``:

    out = x + sgn(x) |x|^(q/2) xi = x * (1 + |x|^((q - 2)/2) xi)

so ``E[out] = x`` and ``Var[out] = p / (1 - p) |x|^q``; ``q = 2`` is exactly inverted dropout (same
mask draw, bit for bit), ``q < 2`` gives sparser and ``q > 2`` denser activations. Any shape; eval mode
and ``p = 0`` are the identity.

Two documented choices:

* Gradient as in the official code (``najeebkhan/sparseout``): the noise factor
  ``1 + |x|^((q-2)/2) xi`` is a constant for autograd, so ``d out / d x`` is that factor, not the exact
  derivative ``1 + (q/2) |x|^((q-2)/2) xi``.
* ``|x|`` is clamped below at ``min_abs = 1e-4`` (the official code adds 1e-12). For q < 2 the factor
  grows without bound as x -> 0; with the clamp it is at most ``1e-4^((q-2)/2)`` (100 at q = 1, 1e4
  at q -> 0), which keeps float16/bfloat16 finite and the gradient bounded. Only ``|x| < min_abs`` is
  affected, where the noise term ``|x| * min_abs^((q-2)/2)`` is below its unclamped value.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from autodropout.core.checks import is_real
from autodropout.regularizers.dropout import check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register


def _check_positive(value: float, name: str) -> float:
    if not is_real(value, 0.0, low_open=True):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def sparseout(
    x: Tensor, p: float = 0.5, q: float = 2.0, training: bool = True, min_abs: float = 1e-4
) -> Tensor:
    """Sparseout of ``x`` (any shape) with drop rate ``p`` and exponent ``q > 0``; same shape out."""
    p = check_rate(p)
    q = _check_positive(q, "q")
    min_abs = _check_positive(min_abs, "min_abs")
    if not training or p == 0.0:
        return x
    with torch.no_grad():
        xi = keep_mask(x, p).sub_(1.0)
        factor = x.abs().clamp_(min=min_abs).pow_((q - 2.0) / 2.0).mul_(xi).add_(1.0)
    return x * factor


class Sparseout(nn.Module):
    """Module form of :func:`sparseout` (Khan & Stavness, Canadian AI 2019). Input: any shape."""

    def __init__(self, p: float = 0.5, q: float = 2.0, min_abs: float = 1e-4) -> None:
        super().__init__()
        self.p = check_rate(p)
        self.q = _check_positive(q, "q")
        self.min_abs = _check_positive(min_abs, "min_abs")

    def forward(self, x: Tensor) -> Tensor:
        return sparseout(x, self.p, self.q, self.training, self.min_abs)

    def extra_repr(self) -> str:
        return f"p={self.p}, q={self.q}, min_abs={self.min_abs}"


register(
    RegularizerInfo(
        name="sparseout",
        factory=Sparseout,
        reference="Khan & Stavness, Canadian AI 2019 (arXiv 1904.08050)",
        rate_param="p",
        identity_params={"p": 0.0},
        # q != 2 so that the shared tests exercise the power path; its dropped entries are
        # x (1 - |x|^((q-2)/2)), not zeros.
        example_params={"p": 0.3, "q": 1.5},
        input_kinds=("conv", "seq", "flat", "heads"),
        zeros_rate=False,
    )
)
