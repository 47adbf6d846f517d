"""Concrete Dropout (Gal, Hron & Kendall, NeurIPS 2017, arXiv 1705.07832): a dropout rate per site,
learned by gradient descent in the same training run, through the concrete (relaxed Bernoulli)
relaxation of the drop mask.

Training, with ``p = sigmoid(logit)`` a learned scalar per module, temperature ``t`` (0.1 in the
paper) and ``u ~ U(0, 1)`` iid per element:

    z   = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)      relaxed drop mask, in (0, 1)
    out = x * (1 - z) / (1 - p)                                         inverted scaling

``z`` tends to a Bernoulli(p) draw as ``t -> 0`` (it is 1 exactly when the logistic noise
``log u - log(1 - u)`` exceeds ``-logit``, probability p), and for ``t > 0`` it is differentiable in
``logit``, so the data loss moves p. ``E[z]`` is within 0.002 of p at ``t = 0.1`` for p in
[0.05, 0.7], so ``E[out] = x`` to that accuracy. Eval mode is the identity. Shapes: (B, C, H, W),
(B, T, C) or (B, N); the mask is elementwise (the paper's spatial variant, one draw per channel, is
not implemented).

The paper's regularization term for a site followed by a layer with weights W and K inputs is

    weight_regularizer * ||W||^2 / (1 - p) + dropout_regularizer * K * (p log p + (1 - p) log(1 - p))

with ``weight_regularizer = l^2 / N`` and ``dropout_regularizer = 2 / (tau N)`` (N training points,
prior length-scale l, model precision tau). The second, negative-entropy term is minimal at
p = 0.5 and is what keeps p away from 0; the module exposes it as
:meth:`ConcreteDropout.regularization_loss`, summed over a model by
:func:`autodropout.regularizers.training_step.auxiliary_loss`, which the task training loop adds to
the loss.

**The weight term is not implemented**: a site module sees only its input, not the weights of the
layer that follows it (and in these models a site is not always followed by one layer). The
optimizer's weight decay plays its role of an L2 penalty on W; what is lost is the term's only
coupling to the rate, its factor 1 / (1 - p), which penalises high rates. Without it the learned p
is pulled up only by the entropy term and down only by the data loss, so it can settle higher than
the paper's.

K is the input's feature count: the channel axis of (B, C, H, W), the last axis of (B, T, C) and
(B, N) (read at each training forward). In the paper's derivation K counts the rows of W the mask
acts on, one Bernoulli variable each; the reference code (``yaringal/ConcreteDropout``) uses the
elements per sample, which is the same for (B, N) but would scale a sequence's or a map's penalty
with its length or area.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodropout.core.checks import is_real
from autodropout.regularizers.dropout import check_dims, check_rate
from autodropout.regularizers.registry import RegularizerInfo, register

#: The paper's temperature of the relaxation (sec. 3).
TEMPERATURE = 0.1
#: ``dropout_regularizer`` of the reference code (``yaringal/ConcreteDropout``); the paper's own
#: choice is ``2 / (tau N)`` for N training points, which depends on the data set.
DROPOUT_REGULARIZER = 1e-5

_LAYOUT = "(B, C, *spatial), (B, T, C) or (B, N)"


def feature_count(x: Tensor) -> int:
    """K of the paper's penalty for the activation ``x``: C of (B, C, H, W) and higher, C of
    (B, T, C), N of (B, N)."""
    check_dims(x, "concrete_dropout", _LAYOUT, min_dim=2)
    return int(x.shape[1] if x.dim() >= 4 else x.shape[-1])


def relaxed_drop_mask(x: Tensor, logit: Tensor, temperature: float = TEMPERATURE,
                      generator: torch.Generator | None = None) -> Tensor:
    """The relaxed drop mask ``z`` (``x``'s shape, values in [0, 1]) of the module doc.

    The logistic noise ``log u - log(1 - u)`` is drawn under ``no_grad`` on ``x``'s device, in the
    wider of ``x``'s and ``logit``'s dtypes (so a float32 logit keeps its precision when autocast
    hands the site bfloat16); ``u`` is clamped to [eps, 1 - eps] of that dtype so the noise is
    finite. ``z`` is differentiable in ``logit`` (it is not detached: that is how p is learned).
    """
    dtype = torch.promote_types(x.dtype, logit.dtype)
    with torch.no_grad():
        u = torch.rand(x.shape, dtype=dtype, device=x.device, generator=generator)
        noise = torch.logit(u, eps=torch.finfo(dtype).eps)
    # log p - log(1 - p) is the logit itself: exact, no log of a rounded p.
    return torch.sigmoid((logit.to(dtype) + noise) / temperature)


def concrete_dropout(x: Tensor, logit: Tensor, temperature: float = TEMPERATURE, training: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:
    """Concrete Dropout of ``x`` ((B, C, H, W), (B, T, C) or (B, N)) at rate ``sigmoid(logit)``
    (``logit``: a 0-dim tensor); same shape and dtype out. Eval mode is the identity."""
    check_dims(x, "concrete_dropout", _LAYOUT, min_dim=2)
    if not training:
        return x
    dtype = torch.promote_types(x.dtype, logit.dtype)
    # 1 - z = sigmoid(-(...)/t) and 1 - p = sigmoid(-logit), both without cancellation.
    z = relaxed_drop_mask(x, logit, temperature, generator)
    factor = (1.0 - z) / torch.sigmoid(-logit.to(dtype))
    return x * factor.to(x.dtype)


def concrete_dropout_penalty(logit: Tensor, features: int, dropout_regularizer: float = DROPOUT_REGULARIZER) -> Tensor:
    """The paper's dropout-rate term ``dropout_regularizer * K * (p log p + (1 - p) log(1 - p))``
    (0-dim, differentiable in ``logit``; minimal at p = 0.5), with ``K = features``."""
    p = torch.sigmoid(logit)
    # log p = logsigmoid(logit), log(1 - p) = logsigmoid(-logit): finite for every finite logit.
    negative_entropy = p * F.logsigmoid(logit) + (1.0 - p) * F.logsigmoid(-logit)
    return negative_entropy * (dropout_regularizer * features)


def _check_temperature(value: float) -> float:
    if not is_real(value, 0.0, low_open=True):
        raise ValueError(f"temperature must be a positive finite number, got {value!r}")
    return float(value)


def _check_regularizer(value: float) -> float:
    if not is_real(value, 0.0):
        raise ValueError(f"dropout_regularizer must be a finite number >= 0, got {value!r}")
    return float(value)


class ConcreteDropout(nn.Module):
    """Module form of :func:`concrete_dropout` (Gal, Hron & Kendall, NeurIPS 2017) with its own
    learned rate ``p = sigmoid(logit)``, starting at ``init_p`` (the paper initialises at 0.1).

    ``logit`` is a 0-dim ``nn.Parameter``, so the task loop's optimizer puts it in the group without
    weight decay (decay would pull p to 0.5 regardless of the data). ``init_p = 0`` is the identity
    with no parameter and no penalty: p = 0 is a point gradient descent cannot leave (its logit
    is -inf), so it means "off", as rate 0 does for every other regularizer.

    :meth:`regularization_loss` is the paper's dropout-rate term for the feature count K of the last
    training input; the training loop adds it to the loss (the weight term is left to weight decay,
    see the module doc). Input: (B, C, H, W), (B, T, C) or (B, N).
    """

    def __init__(self, init_p: float = 0.1, temperature: float = TEMPERATURE,
                 dropout_regularizer: float = DROPOUT_REGULARIZER) -> None:
        super().__init__()
        self.init_p = check_rate(init_p, "init_p")
        self.temperature = _check_temperature(temperature)
        self.dropout_regularizer = _check_regularizer(dropout_regularizer)
        logit = math.log(self.init_p / (1.0 - self.init_p)) if self.init_p > 0 else None
        self.register_parameter("logit", None if logit is None else nn.Parameter(torch.tensor(logit)))
        self.features = 0  # K, from the last training input; 0 until the first one

    @property
    def p(self) -> float:
        """The current learned drop rate."""
        return 0.0 if self.logit is None else float(torch.sigmoid(self.logit.detach().float()))

    def forward(self, x: Tensor) -> Tensor:
        if self.logit is None:
            check_dims(x, "concrete_dropout", _LAYOUT, min_dim=2)
            return x
        if self.training:
            self.features = feature_count(x)
        return concrete_dropout(x, self.logit, self.temperature, self.training)

    def regularization_loss(self) -> Tensor:
        """The dropout-rate term of the paper for this site (0-dim tensor; zero before the first
        training forward and for ``init_p = 0``)."""
        if self.logit is None or not self.features:
            device = None if self.logit is None else self.logit.device
            return torch.zeros((), device=device)
        # Only the dropout-rate term: the weight term needs the next layer's W, which this module does
        # not own; weight decay stands in for it, without its 1 / (1 - p) factor (module doc).
        return concrete_dropout_penalty(self.logit.float(), self.features, self.dropout_regularizer)

    def extra_repr(self) -> str:
        return (f"p={self.p:.4f}, init_p={self.init_p}, temperature={self.temperature}, "
                f"dropout_regularizer={self.dropout_regularizer}")


register(
    RegularizerInfo(
        name="concrete_dropout",
        factory=ConcreteDropout,
        reference="Gal, Hron & Kendall, NeurIPS 2017 (arXiv 1705.07832)",
        rate_param="init_p",
        identity_params={"init_p": 0.0},
        example_params={"init_p": 0.3},
        input_kinds=("conv", "seq", "flat"),
        # The relaxed mask scales entries by (1 - z) / (1 - p) in (0, 1 / (1 - p)); exact zeros are rare.
        zeros_rate=False,
    )
)
