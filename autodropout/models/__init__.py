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

from autodropout.models.decoding import beam_search, greedy_decode
from autodropout.models.sites import (
    ConvSites,
    Factory,
    LayerStack,
    SiteLayout,
    TransformerSites,
    dropout_factory,
    residual_sites,
)
from autodropout.models.transformer import (
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
from autodropout.models.transformer_layer import build_site
from autodropout.models.wide_resnet import WideResNet

__all__ = [
    "DECODER_SITES",
    "ENCODER_SITES",
    "Attention",
    "ConvSites",
    "Encoded",
    "Factory",
    "LayerStack",
    "SiteLayout",
    "TransformerLM",
    "TransformerLayer",
    "TransformerSeq2Seq",
    "TransformerSites",
    "WideResNet",
    "beam_search",
    "build_site",
    "classic_dropout_sites",
    "classic_lm_dropout",
    "classic_seq2seq_dropout",
    "dropout_factory",
    "greedy_decode",
    "residual_sites",
]
