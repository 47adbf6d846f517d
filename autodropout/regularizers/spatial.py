"""SpatialDropout (Tompson, Goroshin, Jain, LeCun & Bregler, CVPR 2015, arXiv 1411.4280): drop whole
feature channels instead of single activations, because neighbouring activations of a feature map
are strongly correlated and elementwise dropout barely regularizes them.

One Bernoulli draw per (sample, channel), broadcast over the positions, inverted scaling by
1 / (1 - p):

==================  ===========  =====================================================
input               mask shape   meaning
==================  ===========  =====================================================
(B, C, H, W), ...   (B, C, 1, 1) a channel is dropped over the whole map (``nn.Dropout2d``)
(B, T, C)           (B, 1, C)    a feature is dropped at every time step (Keras
                                 ``SpatialDropout1D``; not ``nn.Dropout1d``, which reads
                                 (B, C, L))
(B, N)              (B, N)       no positions, so each feature is its own channel: dropout
==================  ===========  =====================================================
"""
from __future__ import annotations

from torch import Tensor, nn

from autodropout.regularizers.dropout import check_dims, check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register


def spatial_shared_dims(ndim: int) -> tuple[int, ...]:
    """The position axes a channel mask is broadcast over, per the layout table in the module doc."""
    if ndim == 3:
        return (1,)
    return tuple(range(2, ndim))


def spatial_dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """SpatialDropout of ``x`` ((B, C, H, W) and higher, (B, T, C) or (B, N)); same shape out."""
    p = check_rate(p)
    check_dims(x, "spatial_dropout", "(B, C, *spatial), (B, T, C) or (B, N)", min_dim=2)
    if not training or p == 0.0:
        return x
    return x * keep_mask(x, p, spatial_shared_dims(x.dim()))


class SpatialDropout(nn.Module):
    """Module form of :func:`spatial_dropout` (Tompson et al., CVPR 2015)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_rate(p)

    def forward(self, x: Tensor) -> Tensor:
        return spatial_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


register(
    RegularizerInfo(
        name="spatial_dropout",
        factory=SpatialDropout,
        reference="Tompson, Goroshin, Jain, LeCun & Bregler, CVPR 2015 (arXiv 1411.4280)",
        rate_param="p",
        identity_params={"p": 0.0},
        example_params={"p": 0.3},
        input_kinds=("conv", "seq", "flat"),
    )
)
