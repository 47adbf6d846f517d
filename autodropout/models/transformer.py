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

Attention runs through ``F.scaled_dot_product_attention`` unless an ``attn_probs`` site is present:
the probabilities only exist as a tensor in the explicit softmax(QK^T / sqrt(d)) V path, which is
then used (same result; tested).

Positions are sinusoidal (Vaswani et al. sec. 3.5), added to token embeddings scaled by sqrt(C):
parameter-free, the same for the LM and both sides of the translation model, and what the
Transformer-Base the paper transfers its patterns to uses. ``max_len`` bounds the table.

Weights follow GPT-2 / nanoGPT: linear layers N(0, 0.02), the two projections that feed the residual
stream N(0, 0.02 / sqrt(2 L)) for L layers in the stack, embeddings N(0, C^-1/2) so that the scaled
embedding has unit variance like the sinusoids; the output layer is tied to the target embedding.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.models import Factory, build_site

SELF_ATTENTION_SITES: tuple[str, ...] = ("query", "key", "value", "attn_probs", "attn_output")
CROSS_ATTENTION_SITES: tuple[str, ...] = tuple(f"cross_{name}" for name in SELF_ATTENTION_SITES)
FFN_SITES: tuple[str, ...] = ("ffn_hidden", "ffn_output")
#: Site names of an encoder (or LM) layer, in forward order.
ENCODER_SITES: tuple[str, ...] = SELF_ATTENTION_SITES + FFN_SITES
#: Site names of a decoder layer (with cross-attention), in forward order.
DECODER_SITES: tuple[str, ...] = SELF_ATTENTION_SITES + CROSS_ATTENTION_SITES + FFN_SITES

LayerSites = Mapping[str, Factory | None]


class Attention(nn.Module):
    """Multi-head attention with sites (names without the ``cross_`` prefix; see module docstring).

    Args:
        d_model: width C; must be divisible by ``n_heads``.
        n_heads: number of heads h.
        sites: built site modules by name (a subset of ``SELF_ATTENTION_SITES``).
    """

    def __init__(self, d_model: int, n_heads: int, sites: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.sites = nn.ModuleDict(sites)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """x (B, T, C) attends to ``context`` (B, S, C), or to itself when it is None.

        ``key_mask`` (B, S) bool is True at keys that may be attended to (False at padding);
        ``causal`` lets position t attend to positions <= t only. Returns (B, T, C).
        """
        context = x if context is None else context
        q = self._site("query", self._split_heads(self.q_proj(x)))
        k = self._site("key", self._split_heads(self.k_proj(context)))
        v = self._site("value", self._split_heads(self.v_proj(context)))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if causal and mask is not None:
            # SDPA takes either a mask or is_causal; fold the causal part into the mask.
            mask = mask & _causal_mask(q.shape[-2], k.shape[-2], q.device)
            causal = False
        if "attn_probs" in self.sites:
            y = self._attend_explicit(q, k, v, mask, causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        batch, _, length, _ = y.shape
        return self._site("attn_output", self.out_proj(y.transpose(1, 2).reshape(batch, length, -1)))

    def _attend_explicit(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
    ) -> torch.Tensor:
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if causal:
            mask = _causal_mask(q.shape[-2], k.shape[-2], q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        # Softmax in float32 so that bfloat16 activations do not lose the small probabilities.
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return self.sites["attn_probs"](probs) @ v

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.n_heads, width // self.n_heads).transpose(1, 2)

    def _site(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.sites[name](x) if name in self.sites else x

    def init_weights(self, residual_std: float) -> None:
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            _init_linear(proj, 0.02)
        _init_linear(self.out_proj, residual_std)

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}"


class TransformerLayer(nn.Module):
    """Pre-LN layer: x + SelfAttn(LN(x)) [+ CrossAttn(LN(x), context)] + FFN(LN(x)), FFN = GELU MLP.

    Args:
        d_model, n_heads, d_ff: widths C, h and F.
        sites: site name -> factory-or-None (a missing name means no module there); valid names are
            ``ENCODER_SITES``, plus the ``cross_*`` ones of ``DECODER_SITES`` when ``cross_attention``.
        cross_attention: build the decoder's cross-attention sublayer (a structural choice).
        where: how error messages name ``sites`` (e.g. ``"layer_sites[3]"``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        sites: LayerSites | None = None,
        cross_attention: bool = False,
        where: str = "sites",
    ) -> None:
        super().__init__()
        built = _build_layer_sites(sites, DECODER_SITES if cross_attention else ENCODER_SITES, where)
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, {n: m for n, m in built.items() if n in SELF_ATTENTION_SITES})
        if cross_attention:
            self.ln_cross = nn.LayerNorm(d_model)
            cross = {n.removeprefix("cross_"): m for n, m in built.items() if n in CROSS_ATTENTION_SITES}
            self.cross_attn = Attention(d_model, n_heads, cross)
        else:
            self.ln_cross = self.cross_attn = None
        self.ln_ffn = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.sites = nn.ModuleDict({n: m for n, m in built.items() if n in FFN_SITES})

    def forward(
        self,
        x: torch.Tensor,
        *,
        causal: bool = False,
        key_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). ``key_mask`` (B, T) masks self-attention keys; ``context``
        (B, S, C) and ``context_mask`` (B, S) are the encoder output and its padding mask."""
        x = x + self.attn(self.ln_attn(x), key_mask=key_mask, causal=causal)
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("context: a layer with cross-attention needs the encoder output")
            x = x + self.cross_attn(self.ln_cross(x), context=context, key_mask=context_mask)
        hidden = self._site("ffn_hidden", F.gelu(self.fc1(self.ln_ffn(x))))
        return x + self._site("ffn_output", self.fc2(hidden))

    def _site(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.sites[name](x) if name in self.sites else x

    def init_weights(self, residual_std: float) -> None:
        """GPT-2 initialisation; ``residual_std`` for the projections that feed the residual stream."""
        for attn in (self.attn, self.cross_attn):
            if attn is not None:
                attn.init_weights(residual_std)
        _init_linear(self.fc1, 0.02)
        _init_linear(self.fc2, residual_std)


class TokenEmbedding(nn.Module):
    """Token ids (B, T) -> token embedding x sqrt(C) + sinusoidal position (B, T, C), then the
    embedding site (if any)."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int, site: nn.Module | None) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.token.weight, std=d_model**-0.5)
        self.register_buffer("position", _sinusoids(max_len, d_model), persistent=False)
        self.site = site
        self.scale = math.sqrt(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token(ids) * self.scale + self.position[: ids.shape[1]].to(self.token.weight.dtype)
        return x if self.site is None else self.site(x)


class TransformerLM(nn.Module):
    """Causal (decoder-only) language model: token ids (B, T) -> next-token logits (B, T, V).

    Args:
        vocab_size: V.
        d_model, n_layers, n_heads: width C, number of layers L, heads h (C divisible by h).
        d_ff: feed-forward width F (default 4 C).
        max_len: longest sequence accepted (size of the position table).
        layer_sites: ``None`` or one mapping site name -> factory-or-None per layer
            (names: ``ENCODER_SITES``).
        embedding_dropout: factory for the site after the embedding (token + position), or None.
        tie_weights: share the output layer's weight with the token embedding.

    One pattern site per layer: ``num_sites == n_layers``. :func:`classic_lm_dropout` builds the
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
        embedding_dropout: Factory | None = None,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        d_ff = _check_dims(d_model=d_model, n_heads=n_heads, d_ff=d_ff, max_len=max_len,
                           vocab_size=vocab_size, n_layers=n_layers)
        layer_sites = _per_layer(layer_sites, n_layers, "layer_sites")
        self.max_len = max_len
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, build_site(embedding_dropout, "embedding_dropout"))
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

    def repeat_interleave(self, repeats: int) -> "Encoded":
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
            (called once for each), or None.
        tie_weights: share the output layer's weight with the target embedding.
        pad_id: padding id in both vocabularies. Source padding is masked out of encoder
            self-attention and cross-attention. The decoder is causal, so trailing target padding
            cannot reach earlier positions; leave its loss out with ``ignore_index=pad_id``.

    Pattern sites: ``num_sites == n_enc_layers + n_dec_layers`` (encoder layers first). Generation:
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
        embedding_dropout: Factory | None = None,
        tie_weights: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        d_ff = _check_dims(d_model=d_model, n_heads=n_heads, d_ff=d_ff, max_len=max_len, src_vocab=src_vocab,
                           tgt_vocab=tgt_vocab, n_enc_layers=n_enc_layers, n_dec_layers=n_dec_layers)
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < min(src_vocab, tgt_vocab):
            raise ValueError(f"pad_id: expected an int in [0, {min(src_vocab, tgt_vocab)}), got {pad_id!r}")
        encoder_sites = _per_layer(encoder_sites, n_enc_layers, "encoder_sites")
        decoder_sites = _per_layer(decoder_sites, n_dec_layers, "decoder_sites")
        self.max_len, self.pad_id = max_len, pad_id
        self.src_embed = TokenEmbedding(src_vocab, d_model, max_len,
                                        build_site(embedding_dropout, "embedding_dropout"))
        self.tgt_embed = TokenEmbedding(tgt_vocab, d_model, max_len,
                                        build_site(embedding_dropout, "embedding_dropout"))
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

    ``nn.Dropout(p)`` on ``attn_output`` and ``ffn_output`` (and ``cross_attn_output``): the
    "residual dropout" of Vaswani et al. sec. 5.4, on each sublayer's output before the residual
    add; ``nn.Dropout(attn_p)`` (default ``p``) on ``attn_probs`` (and ``cross_attn_probs``): the
    attention-probability dropout of BERT, fairseq and nanoGPT. Nothing on query/key/value or the
    FFN hidden units. Sites whose rate is 0 are left out (so attention keeps its fused kernel).
    """
    p = _check_rate("p", p)
    attn_p = p if attn_p is None else _check_rate("attn_p", attn_p)
    rates = {"attn_probs": attn_p, "attn_output": p, "ffn_output": p}
    if cross_attention:
        rates.update(cross_attn_probs=attn_p, cross_attn_output=p)
    return {name: functools.partial(nn.Dropout, rate) for name, rate in rates.items() if rate > 0}


def classic_lm_dropout(p: float, n_layers: int, *, attn_p: float | None = None) -> dict[str, Any]:
    """Keyword arguments of :class:`TransformerLM` for the classic dropout baseline: every layer gets
    :func:`classic_dropout_sites`, and ``nn.Dropout(p)`` follows the embedding (token + position)."""
    return {
        "layer_sites": [classic_dropout_sites(p, attn_p=attn_p) for _ in range(n_layers)],
        "embedding_dropout": _dropout_factory(p),
    }


def classic_seq2seq_dropout(
    p: float, n_enc_layers: int, n_dec_layers: int, *, attn_p: float | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`TransformerSeq2Seq` for the classic dropout baseline (as
    :func:`classic_lm_dropout`, with the cross-attention sites of decoder layers too)."""
    return {
        "encoder_sites": [classic_dropout_sites(p, attn_p=attn_p) for _ in range(n_enc_layers)],
        "decoder_sites": [classic_dropout_sites(p, attn_p=attn_p, cross_attention=True) for _ in range(n_dec_layers)],
        "embedding_dropout": _dropout_factory(p),
    }


def _dropout_factory(p: float) -> Factory | None:
    p = _check_rate("p", p)
    return functools.partial(nn.Dropout, p) if p > 0 else None


def _check_rate(name: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{name}: expected a dropout rate in [0, 1), got {p!r}")
    return float(p)


def _build_layer_sites(sites: LayerSites | None, valid: tuple[str, ...], where: str) -> dict[str, nn.Module]:
    if sites is None:
        return {}
    if not isinstance(sites, Mapping):
        raise TypeError(f"{where}: expected a mapping of site name -> factory-or-None, got {type(sites).__name__}")
    for name in sites:
        if name not in valid:
            raise ValueError(f"{where}: unknown site {name!r}; valid names here: {', '.join(valid)}")
    built = {name: build_site(sites[name], f"{where}[{name!r}]") for name in valid if name in sites}
    return {name: module for name, module in built.items() if module is not None}


def _per_layer(sites: Sequence[LayerSites | None] | None, n_layers: int, name: str) -> list[LayerSites | None]:
    if sites is None:
        return [None] * n_layers
    if isinstance(sites, (Mapping, str, bytes)) or not isinstance(sites, Sequence):
        raise TypeError(f"{name}: expected a sequence of {n_layers} mappings (one per layer) or None, "
                        f"got {type(sites).__name__}")
    if len(sites) != n_layers:
        raise ValueError(f"{name}: expected one entry per layer ({n_layers}), got {len(sites)}")
    return list(sites)


def _check_dims(*, d_model: int, n_heads: int, d_ff: int | None, **positive: int) -> int:
    """Validate the sizes; returns d_ff (default 4 d_model)."""
    d_ff = 4 * d_model if d_ff is None else d_ff
    for name, value in {"d_model": d_model, "n_heads": n_heads, "d_ff": d_ff, **positive}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
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


def _init_linear(linear: nn.Linear, std: float) -> None:
    nn.init.normal_(linear.weight, std=std)
    nn.init.zeros_(linear.bias)


def _causal_mask(length: int, source_length: int, device: torch.device) -> torch.Tensor:
    return torch.ones(length, source_length, dtype=torch.bool, device=device).tril()


def _sinusoids(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model): sin at even, cos at odd features (Vaswani et al. sec. 3.5)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return table
