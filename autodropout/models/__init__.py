"""Target networks that take regularizer factories at named sites (Pham & Le 2021, sec. 3).

A *site* is a place in the forward pass where a regularizer may act on an activation. Models never
take boolean flags: each site gets a *factory*, a zero-argument callable returning an ``nn.Module``
(called once per site, so every site owns its module), or ``None`` for nothing there.

- :class:`WideResNet`: one pattern site per residual block (the second BatchNorm's output).
- :class:`TransformerLM` and :class:`TransformerSeq2Seq`: one :class:`TransformerLayer` shared by
  both, with named sites per layer (``query`` ... ``ffn_output``, ``cross_*`` in decoder layers).
- :func:`greedy_decode`, :func:`beam_search`: batched generation for :class:`TransformerSeq2Seq`.

>>> from torch import nn
>>> model = WideResNet(28, 2, num_classes=10, site_factories=[lambda: nn.Dropout(0.1)] * 12)
"""
from __future__ import annotations

from typing import Callable

from torch import nn

#: A zero-argument callable building the module for one site.
Factory = Callable[[], nn.Module]


def build_site(factory: Factory | None, where: str) -> nn.Module | None:
    """Call ``factory`` (``None`` -> no module); ``where`` names the site in error messages."""
    if factory is None:
        return None
    if not callable(factory):
        raise TypeError(f"{where}: expected a zero-argument factory or None, got {type(factory).__name__}")
    module = factory()
    if not isinstance(module, nn.Module):
        raise TypeError(f"{where}: the factory returned {type(module).__name__}, expected an nn.Module")
    return module


# The submodules import ``Factory`` and ``build_site`` from here, so these imports come after them.
from autodropout.models.decoding import beam_search, greedy_decode  # noqa: E402
from autodropout.models.transformer import (  # noqa: E402
    DECODER_SITES,
    ENCODER_SITES,
    Attention,
    Encoded,
    TransformerLayer,
    TransformerLM,
    TransformerSeq2Seq,
    classic_dropout_sites,
    classic_lm_dropout,
    classic_seq2seq_dropout,
)
from autodropout.models.wide_resnet import WideResNet  # noqa: E402

__all__ = [
    "DECODER_SITES",
    "ENCODER_SITES",
    "Attention",
    "Encoded",
    "Factory",
    "TransformerLM",
    "TransformerLayer",
    "TransformerSeq2Seq",
    "WideResNet",
    "beam_search",
    "build_site",
    "classic_dropout_sites",
    "classic_lm_dropout",
    "classic_seq2seq_dropout",
    "greedy_decode",
]
