"""DropConnect (Wan, Zeiler, Zhang, LeCun & Fergus, ICML 2013): drop individual weights of a layer
instead of its activations.

Training: ``out = layer(x)`` computed with the weight ``W * M / (1 - p)``, ``M_ij ~ Bernoulli(1 - p)``.
Choices (documented because the paper differs):

* one mask per forward call, shared by the batch (the paper samples one per example; a per-batch mask
  keeps the layer a single matmul/convolution);
* inverted scaling during training and the plain layer in eval mode ("mean inference"), not the
  paper's Gaussian moment-matching inference;
* the bias is not masked.

The masked weight is a new tensor passed to ``F.linear`` / the convolution: the stored parameters are
never modified, and gradients reach the wrapped layer's weight through the mask.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from autodropout.regularizers.dropout import check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register

_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def dropconnect_weight(weight: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """``weight * M / (1 - p)`` with an iid Bernoulli(1 - p) mask ``M`` of the weight's shape."""
    p = check_rate(p)
    if not training or p == 0.0:
        return weight
    return weight * keep_mask(weight, p)


class DropConnect(nn.Module):
    """DropConnect around an ``nn.Linear`` or ``nn.Conv1d/2d/3d`` (Wan et al., ICML 2013).

    Input and output shapes are the wrapped layer's, e.g. (B, in_features) -> (B, out_features) or
    (B, C_in, H, W) -> (B, C_out, H', W'). The layer is a submodule (``.module``), so its parameters
    are trained and saved as usual. Subclasses of these layers are refused: they may override
    ``forward``, which the masked-weight call would silently bypass.
    """

    def __init__(self, module: nn.Module, p: float = 0.5) -> None:
        super().__init__()
        if type(module) not in _SUPPORTED:
            names = ", ".join(f"nn.{cls.__name__}" for cls in _SUPPORTED)
            raise TypeError(f"dropconnect: module must be one of {names}, got {type(module).__name__}")
        self.module = module
        self.p = check_rate(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return self.module(x)
        weight = dropconnect_weight(self.module.weight, self.p)
        if isinstance(self.module, nn.Linear):
            return F.linear(x, weight, self.module.bias)
        # _conv_forward applies the layer's own stride/padding/dilation/groups and padding_mode.
        return self.module._conv_forward(x, weight, self.module.bias)

    def extra_repr(self) -> str:
        return f"p={self.p}"


register(
    RegularizerInfo(
        name="dropconnect",
        factory=DropConnect,
        reference="Wan, Zeiler, Zhang, LeCun & Fergus, ICML 2013",
        rate_param="p",
        identity_params={"p": 0.0},
        example_params={"p": 0.3},
        input_kinds=("layer",),
    )
)
