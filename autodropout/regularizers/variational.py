"""Variational (locked) dropout (Gal & Ghahramani, NeurIPS 2016, arXiv 1512.05287), as AWD-LSTM's
``LockedDropout`` (Merity, Keskar & Socher, ICLR 2018): one mask per sequence, reused at every time
step, inverted scaling by 1 / (1 - p).

==================================  ============  ==============================================
input                               mask shape    meaning
==================================  ============  ==============================================
(B, T, C)                           (B, 1, C)     a feature is dropped for the whole sequence
(T, B, C), ``batch_first=False``    (1, B, C)     the same for sequence-first tensors (AWD-LSTM)
(B, C, H, W), ...                   (B, C, 1, 1)  the positions of a map play the time steps, so a
                                                  channel is dropped at every position; this
                                                  coincides with SpatialDropout
(B, N)                              (B, N)        a single time step: dropout
==================================  ============  ==============================================
"""
from __future__ import annotations

from torch import Tensor, nn

from autodropout.regularizers.dropout import check_dims, check_rate, keep_mask
from autodropout.regularizers.registry import RegularizerInfo, register
from autodropout.regularizers.spatial import spatial_shared_dims


def variational_dropout(
    x: Tensor, p: float = 0.5, training: bool = True, batch_first: bool = True
) -> Tensor:
    """Locked dropout of ``x``, mask shared over time (see the module doc for each layout)."""
    p = check_rate(p)
    check_dims(x, "variational_dropout", "(B, T, C), (B, C, *spatial) or (B, N)", min_dim=2)
    if not batch_first and x.dim() != 3:
        raise ValueError(
            f"variational_dropout: batch_first=False expects (T, B, C), got shape {tuple(x.shape)}"
        )
    if not training or p == 0.0:
        return x
    shared = (0,) if not batch_first else spatial_shared_dims(x.dim())
    return x * keep_mask(x, p, shared)


class VariationalDropout(nn.Module):
    """Module form of :func:`variational_dropout` (Gal & Ghahramani, NeurIPS 2016)."""

    def __init__(self, p: float = 0.5, batch_first: bool = True) -> None:
        super().__init__()
        self.p = check_rate(p)
        self.batch_first = bool(batch_first)

    def forward(self, x: Tensor) -> Tensor:
        return variational_dropout(x, self.p, self.training, self.batch_first)

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"


register(
    RegularizerInfo(
        name="variational_dropout",
        factory=VariationalDropout,
        reference="Gal & Ghahramani, NeurIPS 2016 (arXiv 1512.05287)",
        rate_param="p",
        identity_params={"p": 0.0},
        example_params={"p": 0.3},
        input_kinds=("conv", "seq", "flat"),
    )
)
