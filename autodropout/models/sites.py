"""Where a model's regularizer sites are, as the model itself declares it.

A model class exposes its layout (``WideResNet.site_layout(...)``, ``TransformerLM.site_layout(...)``,
``TransformerSeq2Seq.site_layout(...)``), and one function builds the constructor's site arguments
from it for any regularization (``Regularization.model_sites`` in ``autodropout.tasks``), so the
tasks never restate a model's channel widths or layer stacks.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from autodropout.core.checks import is_real

#: A zero-argument callable building the module for one site.
Factory = Callable[[], nn.Module]


@dataclass(frozen=True)
class ConvSites:
    """One pattern site per entry of ``shapes``: the ``(C, H, W)`` each site sees, in forward order;
    the model takes a list of factories-or-None as ``argument``."""

    shapes: tuple[tuple[int, int, int], ...]
    argument: str = "site_factories"

    @property
    def stacks(self) -> tuple[int, ...]:
        """Site counts of consecutive layer stacks (a ConvNet is one stack)."""
        return (len(self.shapes),)


@dataclass(frozen=True)
class LayerStack:
    """``layers`` Transformer layers taking per-layer site mappings as ``argument``; decoder layers
    (``cross_attention``) also have the ``cross_*`` sites."""

    argument: str
    layers: int
    cross_attention: bool = False


@dataclass(frozen=True)
class TransformerSites:
    """Transformer layer stacks in pattern-site order (encoder before decoder), the constructor
    argument of what goes after the token embeddings (one factory for every embedding, or one
    factory-or-None per embedding), and how many embedding outputs there are, in forward order (the
    embedding sites of a Transformer pattern: the language model's one, the translation model's
    source and target)."""

    layer_stacks: tuple[LayerStack, ...]
    embedding_argument: str = "embedding_dropout"
    embeddings: int = 1

    @property
    def stacks(self) -> tuple[int, ...]:
        return tuple(stack.layers for stack in self.layer_stacks)


SiteLayout = ConvSites | TransformerSites


def residual_sites(factory: Factory | None, *, attention: Factory | None = None,
                   cross_attention: bool = False) -> dict[str, Factory]:
    """The site map of one Transformer layer for a hand-designed regularizer.

    ``factory`` goes where the residual dropout of Vaswani et al. (NeurIPS 2017, sec. 5.4) goes:
    each sublayer's output before the residual add (``attn_output``, ``ffn_output``, and
    ``cross_attn_output`` in decoder layers). ``attention`` goes on the attention probabilities
    (``attn_probs``, ``cross_attn_probs``), the attention dropout that BERT, fairseq and nanoGPT add;
    ``None`` leaves them alone (and attention keeps its fused kernel).
    """
    sites: dict[str, Factory] = {}
    if factory is not None:
        sites.update(attn_output=factory, ffn_output=factory)
        if cross_attention:
            sites["cross_attn_output"] = factory
    if attention is not None:
        sites["attn_probs"] = attention
        if cross_attention:
            sites["cross_attn_probs"] = attention
    return sites


def dropout_factory(p: float, name: str = "p") -> Factory | None:
    """``nn.Dropout(p)`` factory, or ``None`` at rate 0; ``p`` must be in [0, 1)."""
    if not is_real(p, 0.0, 1.0, high_open=True):
        raise ValueError(f"{name}: expected a dropout rate in [0, 1), got {p!r}")
    return functools.partial(nn.Dropout, float(p)) if p > 0 else None
