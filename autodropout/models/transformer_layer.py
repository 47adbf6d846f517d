"""One pre-LN Transformer layer (Vaswani et al., NeurIPS 2017; pre-LN as in GPT-2 / nanoGPT) and the
token embedding, shared by the causal language model and the encoder-decoder of
:mod:`autodropout.models.transformer`, with the named sites where AutoDropout (Pham & Le 2021,
sec. 3.2) applies its Transformer patterns (the site table is in that module's docstring).

Attention runs through ``F.scaled_dot_product_attention`` unless an ``attn_probs`` site is present:
the probabilities only exist as a tensor in the explicit softmax(QK^T / sqrt(d)) V path, which is
then used (same result; tested). Positions are sinusoidal (Vaswani et al. sec. 3.5), added to token
embeddings scaled by sqrt(C). Weights follow GPT-2 / nanoGPT (see ``init_weights``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.models.sites import Factory

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

