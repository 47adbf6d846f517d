"""One pre-LN Transformer layer (Vaswani et al., NeurIPS 2017; pre-LN as in GPT-2 / nanoGPT) shared
by a causal language model and an encoder-decoder translation model, with the named sites where
AutoDropout (Pham & Le 2021, sec. 3.2) applies its Transformer patterns.

Sites of every layer, in forward order, and the shape of the tensor each one sees
(B batch, T this stream's length, S the source length, C = d_model, F = d_ff, h heads, d = C / h):

===================== ================== ======================================================
name                  shape              what it is
===================== ================== ======================================================
``query``             (B, h, T, d)       queries after the projection and the head split
``key``               (B, h, T, d)       keys, likewise
``value``             (B, h, T, d)       values, likewise
``attn_probs``        (B, h, T, T)       attention probabilities (after softmax, before x V)
``attn_output``       (B, T, C)          output projection, before the residual add
``cross_query``       (B, h, T, d)       decoder layers only: cross-attention queries
``cross_key``         (B, h, S, d)       cross-attention keys (from the encoder output)
``cross_value``       (B, h, S, d)       cross-attention values
``cross_attn_probs``  (B, h, T, S)       cross-attention probabilities
``cross_attn_output`` (B, T, C)          cross-attention output projection, before the add
``ffn_hidden``        (B, T, F)          feed-forward hidden units after the GELU
``ffn_output``        (B, T, C)          feed-forward output, before the residual add
===================== ================== ======================================================

Positions are sinusoidal (Vaswani et al. sec. 3.5), added to token embeddings scaled by sqrt(C):
parameter-free, the same for the LM and both sides of the translation model, and what the
Transformer-Base the paper transfers its patterns to uses. ``max_len`` bounds the table.

Weights follow GPT-2 / nanoGPT: linear layers N(0, 0.02), the two projections that feed the residual
stream N(0, 0.02 / sqrt(2 L)) for L layers in the stack, embeddings N(0, C^-1/2) so that the scaled
embedding has unit variance like the sinusoids; the output layer is tied to the target embedding.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from autodropout.core.checks import is_int
from autodropout.models.sites import Factory, LayerStack, TransformerSites, dropout_factory, residual_sites
from autodropout.models.transformer_layer import (
    CROSS_ATTENTION_SITES,
    DECODER_SITES,
    ENCODER_SITES,
    FFN_SITES,
    SELF_ATTENTION_SITES,
    Attention,
    LayerSites,
    TokenEmbedding,
    TransformerLayer,
    build_site,
)

__all__ = [
    "CROSS_ATTENTION_SITES", "DECODER_SITES", "ENCODER_SITES", "FFN_SITES", "SELF_ATTENTION_SITES", "Attention",
    "Encoded", "TokenEmbedding", "TransformerLM", "TransformerLayer", "TransformerSeq2Seq",
    "classic_dropout_sites", "classic_lm_dropout", "classic_seq2seq_dropout",
]


class TransformerLM(nn.Module):
    """Causal (decoder-only) language model: token ids (B, T) -> next-token logits (B, T, V).

    Args:
        vocab_size: V.
        d_model, n_layers, n_heads: width C, number of layers L, heads h (C divisible by h).
        d_ff: feed-forward width F (default 4 C).
        max_len: longest sequence accepted (size of the position table).
        layer_sites: ``None`` or one mapping site name -> factory-or-None per layer
            (names: ``ENCODER_SITES``).
        embedding_dropout: factory for the site after the embedding (token + position), a list of
            one factory-or-None (an embedding pattern's form), or None.
        tie_weights: share the output layer's weight with the token embedding.

    One pattern site per layer: ``num_sites == n_layers``, and one embedding site. :func:`classic_lm_dropout` builds the
    classic dropout baseline's arguments.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        *,
        d_ff: int | None = None,
        max_len: int = 1024,
        layer_sites: Sequence[LayerSites | None] | None = None,
        embedding_dropout: Factory | Sequence[Factory | None] | None = None,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        d_ff = _check_dims(d_model=d_model, n_heads=n_heads, d_ff=d_ff, max_len=max_len,
                           vocab_size=vocab_size, n_layers=n_layers)
        layer_sites = _per_layer(layer_sites, n_layers, "layer_sites")
        (embedding_site,) = _per_embedding(embedding_dropout, ("token",))
        self.max_len = max_len
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, embedding_site)
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, n_heads, d_ff, sites, where=f"layer_sites[{i}]")
            for i, sites in enumerate(layer_sites)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = _output_layer(self.embed, vocab_size, d_model, tie_weights)
        for layer in self.layers:
            layer.init_weights(0.02 / math.sqrt(2 * n_layers))

    @property
    def num_sites(self) -> int:
        return len(self.layers)

    @staticmethod
    def site_layout(n_layers: int) -> TransformerSites:
        """Where the sites are: one stack of ``n_layers`` layers (``layer_sites``), plus one embedding
        site (``embedding_dropout``)."""
        return TransformerSites((LayerStack("layer_sites", n_layers),), embeddings=1)

    @property
    def input_embedding(self) -> nn.Module:
        """Where the token ids become continuous (Y-Drop's conductance interpolates its output)."""
        return self.embed.token

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _check_ids("ids", ids, self.max_len)
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, causal=True)
        return self.head(self.norm(x))


class Encoded(NamedTuple):
    """The encoder's output: ``states`` (B, S, C) and ``key_mask`` (B, S), True at real tokens."""

    states: torch.Tensor
    key_mask: torch.Tensor

    def repeat_interleave(self, repeats: int) -> Encoded:
        """Each batch row ``repeats`` times in a row (B * repeats, ...), e.g. once per beam."""
        return Encoded(self.states.repeat_interleave(repeats, 0), self.key_mask.repeat_interleave(repeats, 0))


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder translation model: forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V_tgt).

    Args:
        src_vocab, tgt_vocab: vocabulary sizes.
        d_model, n_enc_layers, n_dec_layers, n_heads: widths and depths (C divisible by h).
        d_ff: feed-forward width (default 4 C).
        max_len: longest source or target sequence accepted.
        encoder_sites: ``None`` or per encoder layer a mapping over ``ENCODER_SITES``.
        decoder_sites: ``None`` or per decoder layer a mapping over ``DECODER_SITES``.
        embedding_dropout: factory for the sites after the source and the target embeddings
            (called once for each), a list of two factories-or-None (source, target: the embedding
            patterns' form), or None.
        tie_weights: share the output layer's weight with the target embedding.
        pad_id: padding id in both vocabularies. Source padding is masked out of encoder
            self-attention and cross-attention. The decoder is causal, so trailing target padding
            cannot reach earlier positions; leave its loss out with ``ignore_index=pad_id``.

    Pattern sites: ``num_sites == n_enc_layers + n_dec_layers`` (encoder layers first), and two
    embedding sites (source, target). Generation:
    :meth:`encode` once, then :meth:`decode` on growing prefixes (see ``models.decoding``).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int,
        n_enc_layers: int,
        n_dec_layers: int,
        n_heads: int,
        *,
        d_ff: int | None = None,
        max_len: int = 1024,
        encoder_sites: Sequence[LayerSites | None] | None = None,
        decoder_sites: Sequence[LayerSites | None] | None = None,
        embedding_dropout: Factory | Sequence[Factory | None] | None = None,
        tie_weights: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        d_ff = _check_dims(d_model=d_model, n_heads=n_heads, d_ff=d_ff, max_len=max_len, src_vocab=src_vocab,
                           tgt_vocab=tgt_vocab, n_enc_layers=n_enc_layers, n_dec_layers=n_dec_layers)
        if not is_int(pad_id, 0, min(src_vocab, tgt_vocab) - 1):
            raise ValueError(f"pad_id: expected an int in [0, {min(src_vocab, tgt_vocab)}), got {pad_id!r}")
        encoder_sites = _per_layer(encoder_sites, n_enc_layers, "encoder_sites")
        decoder_sites = _per_layer(decoder_sites, n_dec_layers, "decoder_sites")
        source_site, target_site = _per_embedding(embedding_dropout, ("source", "target"))
        self.max_len, self.pad_id = max_len, pad_id
        self.src_embed = TokenEmbedding(src_vocab, d_model, max_len, source_site)
        self.tgt_embed = TokenEmbedding(tgt_vocab, d_model, max_len, target_site)
        self.encoder = nn.ModuleList(
            TransformerLayer(d_model, n_heads, d_ff, sites, where=f"encoder_sites[{i}]")
            for i, sites in enumerate(encoder_sites)
        )
        self.decoder = nn.ModuleList(
            TransformerLayer(d_model, n_heads, d_ff, sites, cross_attention=True, where=f"decoder_sites[{i}]")
            for i, sites in enumerate(decoder_sites)
        )
        self.enc_norm = nn.LayerNorm(d_model)
        self.dec_norm = nn.LayerNorm(d_model)
        self.head = _output_layer(self.tgt_embed, tgt_vocab, d_model, tie_weights)
        for stack in (self.encoder, self.decoder):
            for layer in stack:
                layer.init_weights(0.02 / math.sqrt(2 * len(stack)))

    @property
    def num_sites(self) -> int:
        return len(self.encoder) + len(self.decoder)

    @staticmethod
    def site_layout(n_enc_layers: int, n_dec_layers: int) -> TransformerSites:
        """Where the sites are: encoder layers, then decoder layers (with cross-attention sites), and
        the source and target embeddings."""
        return TransformerSites((LayerStack("encoder_sites", n_enc_layers),
                                 LayerStack("decoder_sites", n_dec_layers, cross_attention=True)), embeddings=2)

    @property
    def input_embedding(self) -> nn.Module:
        """Where the source ids become continuous: Y-Drop's conductance measures a unit's importance
        for translating the source, with the target prefix given."""
        return self.src_embed.token

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src))

    def encode(self, src: torch.Tensor) -> Encoded:
        """Source ids (B, S) -> :class:`Encoded`; every row needs at least one non-pad token."""
        _check_ids("src", src, self.max_len)
        key_mask = src != self.pad_id
        # A row of pure padding has nothing to attend to: its softmax would be NaN everywhere.
        if not bool(key_mask.any(dim=1).all()):
            raise ValueError(f"src: every row needs at least one token other than pad_id={self.pad_id}")
        x = self.src_embed(src)
        for layer in self.encoder:
            x = layer(x, key_mask=key_mask)
        return Encoded(self.enc_norm(x), key_mask)

    def decode(self, tgt_in: torch.Tensor, encoded: Encoded) -> torch.Tensor:
        """Target prefix ids (B, T) and the encoded source -> logits (B, T, V_tgt)."""
        _check_ids("tgt_in", tgt_in, self.max_len)
        y = self.tgt_embed(tgt_in)
        for layer in self.decoder:
            y = layer(y, causal=True, context=encoded.states, context_mask=encoded.key_mask)
        return self.head(self.dec_norm(y))


def classic_dropout_sites(
    p: float, *, attn_p: float | None = None, cross_attention: bool = False
) -> dict[str, Factory]:
    """Site map of one layer for the classic Transformer dropout baseline.

    ``nn.Dropout(p)`` at the residual-dropout places of Vaswani et al. sec. 5.4
    (:func:`~autodropout.models.sites.residual_sites`: ``attn_output``, ``ffn_output``,
    ``cross_attn_output``), where the tasks also put any hand-designed regularizer, plus
    ``nn.Dropout(attn_p)`` (default ``p``) on the attention probabilities, the attention dropout of
    BERT, fairseq and nanoGPT. Sites whose rate is 0 are left out (so attention keeps its fused kernel).
    """
    attention = dropout_factory(p if attn_p is None else attn_p, "p" if attn_p is None else "attn_p")
    return residual_sites(dropout_factory(p), attention=attention, cross_attention=cross_attention)


def classic_lm_dropout(p: float, n_layers: int, *, attn_p: float | None = None) -> dict[str, Any]:
    """Keyword arguments of :class:`TransformerLM` for the classic dropout baseline: every layer gets
    :func:`classic_dropout_sites`, and ``nn.Dropout(p)`` follows the embedding (token + position)."""
    return {
        "layer_sites": [classic_dropout_sites(p, attn_p=attn_p) for _ in range(n_layers)],
        "embedding_dropout": dropout_factory(p),
    }


def classic_seq2seq_dropout(
    p: float, n_enc_layers: int, n_dec_layers: int, *, attn_p: float | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`TransformerSeq2Seq` for the classic dropout baseline (as
    :func:`classic_lm_dropout`, with the cross-attention sites of decoder layers too)."""
    return {
        "encoder_sites": [classic_dropout_sites(p, attn_p=attn_p) for _ in range(n_enc_layers)],
        "decoder_sites": [classic_dropout_sites(p, attn_p=attn_p, cross_attention=True) for _ in range(n_dec_layers)],
        "embedding_dropout": dropout_factory(p),
    }


def _per_layer(sites: Sequence[LayerSites | None] | None, n_layers: int, name: str) -> list[LayerSites | None]:
    if sites is None:
        return [None] * n_layers
    if isinstance(sites, (Mapping, str, bytes)) or not isinstance(sites, Sequence):
        raise TypeError(f"{name}: expected a sequence of {n_layers} mappings (one per layer) or None, "
                        f"got {type(sites).__name__}")
    if len(sites) != n_layers:
        raise ValueError(f"{name}: expected one entry per layer ({n_layers}), got {len(sites)}")
    return list(sites)


def _per_embedding(factories: Factory | Sequence[Factory | None] | None,
                   names: tuple[str, ...]) -> list[nn.Module | None]:
    """The module after each embedding (``names`` in forward order): one factory called for each, or
    a list of one factory-or-None per embedding."""
    if factories is None or callable(factories):
        return [build_site(factories, "embedding_dropout") for _ in names]
    if isinstance(factories, (Mapping, str, bytes)) or not isinstance(factories, Sequence):
        raise TypeError(f"embedding_dropout: expected a zero-argument factory, a list of {len(names)} "
                        f"factories-or-None ({', '.join(names)}) or None, got {type(factories).__name__}")
    if len(factories) != len(names):
        raise ValueError(f"embedding_dropout: expected one entry per embedding ({', '.join(names)}), "
                         f"got {len(factories)}")
    return [build_site(factory, f"embedding_dropout[{i}] ({name})") for i, (factory, name) in
            enumerate(zip(factories, names))]


def _check_dims(*, d_model: int, n_heads: int, d_ff: int | None, **positive: int) -> int:
    """Validate the sizes; returns d_ff (default 4 d_model)."""
    d_ff = 4 * d_model if d_ff is None else d_ff
    for name, value in {"d_model": d_model, "n_heads": n_heads, "d_ff": d_ff, **positive}.items():
        if not is_int(value, 1):
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if d_model % n_heads:
        raise ValueError(f"d_model: {d_model} is not divisible by n_heads={n_heads}")
    return d_ff


def _check_ids(name: str, ids: torch.Tensor, max_len: int) -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name}: expected integer token ids of shape (B, T), got {shape}")
    if not 1 <= ids.shape[1] <= max_len:
        raise ValueError(f"{name}: sequence length {ids.shape[1]} is outside [1, max_len={max_len}]")


def _output_layer(embed: TokenEmbedding, vocab_size: int, d_model: int, tie: bool) -> nn.Linear:
    head = nn.Linear(d_model, vocab_size, bias=False)
    if tie:
        head.weight = embed.token.weight
    else:
        nn.init.normal_(head.weight, std=d_model**-0.5)
    return head


