"""Learned Transformer dropout patterns (AutoDropout; Pham & Le, AAAI 2021, arXiv 2101.01761, sec. 3.2).

One :class:`~autodropout.search_spaces.TransformerLayerPattern` per layer; it acts at the sublayers it
switches on, on hidden states ``(B, T, C)`` or per-head tensors ``(B, heads, T, d)`` (a 4-D input is
always per-head). Writing ``D`` for the last (hidden) axis and ``pitch = size + stride``:

* **Geometry.** Along ``D``, runs of ``n = min(size, D - 1)`` units are dropped every
  ``pitch = n + stride`` units from a random offset ``o``, uniform in ``[0, pitch)``: unit ``c`` is
  dropped iff ``(c - o) mod pitch < n``. The run is at most ``D - 1`` units and any two runs have
  ``stride >= 1`` kept units between them, so no mask ever zeroes a whole head (or a whole hidden
  state); with the default sizes (at most 6) the cut only touches heads of at most 6 units, and an
  axis of one unit cannot be masked at all (an error). ``span`` consecutive tokens (``t // span`` is
  the group) share one offset; ``"all"`` (or a span of at least ``T``) shares it over the whole
  sequence, variational-dropout style, and the mask is then ``(B, 1, D)`` / ``(B, heads, 1, D)``,
  broadcast over tokens. Offsets are drawn per sample and per head; ``share_heads`` draws one per
  sample for all heads (no effect on 3-D inputs).
* **"bernoulli" noise.** Dropped units are zeroed and kept units multiplied by ``pitch / stride``,
  the inverse keep rate. Every unit is dropped with probability exactly ``n / pitch`` (the nominal
  rate ``size / (size + stride)`` unless the run was cut), so ``E[out] = x`` exactly. This equals the
  paper's ``numel / sum(mask)`` whenever the pitch divides ``D`` (every offset then keeps the same
  count); otherwise a per-mask ``numel / sum(mask)`` would be biased (``D = 8``, ``n = 2``,
  ``stride = 1``: unit 2 is kept only at offset 0, which keeps 2 of 8 units, so its expected output is
  ``4/3 x``), which is why the inverse keep rate is used.
* **"gaussian" noise.** The same geometry cuts the hidden axis into windows of ``pitch`` units
  starting at the offset (window ``k`` holds the units with ``(c - o + pitch) // pitch == k``; the
  first and last may be partial). Each window, per token group and head as above, draws one
  ``eps ~ N(1, n / stride)`` that multiplies all its units. The mean is 1 (unbiased) and the
  variance ``n / stride = p / (1 - p)`` equals that of the Bernoulli multiplier of the same rate
  ``p = n / pitch`` (Srivastava et al., JMLR 2014, sec. 10).

Eval mode and ``pattern=None`` are the identity. Random state is ``O(B * heads * T / span)`` offsets
(plus ``D / pitch`` normals each for "gaussian"); masks are built under ``no_grad`` on the input's
device and in its dtype (normals are drawn in at least float32).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from autodropout.core.checks import is_int
from autodropout.regularizers._pattern_masks import PatternModule, fixed_offsets, mask_request, pattern_layers
from autodropout.regularizers.registry import RegularizerInfo, register
from autodropout.search_spaces import SUBLAYERS, EmbeddingPattern, Pattern, TransformerLayerPattern, hidden_run

NOISES = ("bernoulli", "gaussian")
#: What :func:`comb_mask` reads: ``size``, ``stride``, ``span``, ``noise`` (and ``share_heads`` on
#: 4-D shapes, which only layer patterns reach).
Comb = TransformerLayerPattern | EmbeddingPattern


def check_transformer_pattern(pattern: object) -> TransformerLayerPattern:
    """Return ``pattern`` if it describes a usable mask, else raise naming the offending field."""
    if not isinstance(pattern, TransformerLayerPattern):
        raise TypeError(f"pattern: expected a TransformerLayerPattern or None, got {type(pattern).__name__}")
    for name in (*SUBLAYERS, "share_heads"):
        if not isinstance(getattr(pattern, name), bool):
            raise ValueError(f"pattern.{name}: expected a bool, got {getattr(pattern, name)!r}")
    check_comb(pattern)
    return pattern


def check_comb(pattern: Comb) -> None:
    """Check that ``pattern``'s comb (``size``, ``stride``, ``span``, ``noise``) is usable, else raise
    naming the offending field."""
    for name in ("size", "stride"):
        if not is_int(getattr(pattern, name), 1):
            raise ValueError(f"pattern.{name}: expected an int >= 1, got {getattr(pattern, name)!r}")
    if pattern.span != "all" and not is_int(pattern.span, 1):
        raise ValueError(f"pattern.span: expected an int >= 1 or 'all', got {pattern.span!r}")
    if pattern.noise not in NOISES:
        raise ValueError(f"pattern.noise: expected one of {list(NOISES)}, got {pattern.noise!r}")


def transformer_pattern_mask(
    shape: Sequence[int],
    pattern: TransformerLayerPattern,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    offsets: Tensor | None = None,
) -> Tensor:
    """The multiplier that :func:`transformer_pattern` applies (see the module docstring).

    Args:
        shape: ``(B, T, C)`` or per-head ``(B, heads, T, d)``; the last axis ``D >= 2``.
        pattern: the layer's pattern.
        generator: source of offsets and normals; must live on ``device``. Defaults to torch's global
            generator.
        device, dtype: of the mask (the activation's); default CPU and ``torch.get_default_dtype()``.
        offsets: fixes the offsets instead of drawing them: an integer tensor in ``[0, pitch)``,
            ``pitch = hidden_run(size, D) + stride``, of shape ``(B, G)`` for 3-D shapes,
            ``(B, heads', G)`` for 4-D ones, where ``heads'`` is 1 with ``share_heads`` and
            ``G = ceil(T / span)`` token groups (1 for ``"all"``).

    Returns:
        A tensor broadcastable to ``shape``: ``(B, T', D)`` or ``(B, heads', T', D)`` with ``T' = 1``
        when one offset covers the sequence, else ``T``.
    """
    check_transformer_pattern(pattern)
    dims, device, dtype = mask_request(shape, (3, 4), "(B, T, C) or (B, heads, T, d)", device, dtype)
    return comb_mask(dims, pattern, generator, device, dtype, checked_offsets(dims, pattern, offsets, device))


def checked_offsets(shape: Sequence[int], pattern: Comb, offsets: Tensor | None, device: torch.device) -> Tensor | None:
    """Caller-fixed ``offsets`` of a mask of ``shape`` (see :func:`transformer_pattern_mask`) as int64 on
    ``device``, or ``None`` when none are given."""
    if offsets is None:
        return None
    _, run, offsets_shape = _geometry(shape, pattern)
    pitch = run + pattern.stride
    return fixed_offsets(offsets, offsets_shape, pitch, f"values must lie in [0, {pitch}) (run + stride)", device)


def _geometry(shape: Sequence[int], pattern: Comb) -> tuple[int, int, tuple[int, ...]]:
    """``(span, run, offsets_shape)`` of a mask of ``shape``: tokens per offset (at most ``T``), units
    per dropped run (:func:`hidden_run`), and ``(*lead, G)``: one offset per sample (and per head
    unless shared) and token group."""
    *lead, tokens, hidden = shape
    if hidden < 2:
        raise ValueError("transformer pattern: a hidden axis of 1 unit cannot be masked without dropping it whole")
    if len(lead) == 2 and pattern.share_heads:
        lead[1] = 1
    span = tokens if pattern.span == "all" else min(pattern.span, tokens)
    return span, hidden_run(pattern.size, hidden), (*lead, -(-tokens // span))


@torch.no_grad()
def comb_mask(
    shape: Sequence[int], pattern: Comb, generator: torch.Generator | None,
    device: torch.device, dtype: torch.dtype, offsets: Tensor | None = None,
) -> Tensor:
    """:func:`transformer_pattern_mask` for an already validated ``pattern`` (modules validate it once);
    an embedding pattern's comb is the same (``regularizers.pattern_embedding``)."""
    tokens, hidden = shape[-2], shape[-1]
    span, run, offsets_shape = _geometry(shape, pattern)
    pitch = run + pattern.stride
    if offsets is None:
        offsets = torch.randint(pitch, offsets_shape, generator=generator, device=device)
    if 1 < span < tokens:
        group = torch.arange(tokens, device=device) // span
        offsets = offsets.index_select(-1, group)
    # Row o of a (pitch, D) table is the answer for offset o: one gather builds every token's row.
    units = torch.arange(hidden, device=device).unsqueeze(0)
    starts = torch.arange(pitch, device=device).unsqueeze(1)
    flat = offsets.reshape(-1)
    if pattern.noise == "bernoulli":
        keep = (units - starts).remainder(pitch) >= run
        table = torch.where(keep, torch.full((), pitch / pattern.stride, device=device, dtype=dtype), 0)
        return table.index_select(0, flat).view(*offsets.shape, hidden)
    windows = torch.div(units - starts + pitch, pitch, rounding_mode="floor")
    noise = torch.randn(
        (*offsets_shape, (hidden - 1 + pitch) // pitch + 1),
        generator=generator, device=device, dtype=torch.promote_types(dtype, torch.float32),
    )
    noise = noise.mul_(math.sqrt(run / pattern.stride)).add_(1.0)
    if 1 < span < tokens:
        noise = noise.index_select(-2, group)
    window = windows.index_select(0, flat).view(*offsets.shape, hidden)
    return noise.gather(-1, window).to(dtype)


def transformer_pattern(
    x: Tensor,
    pattern: TransformerLayerPattern | None,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply a learned Transformer pattern to ``x`` of shape ``(B, T, C)`` or ``(B, heads, T, d)``.

    Same shape out; the identity when not ``training`` or when ``pattern`` is ``None``.
    """
    if not training or pattern is None:
        return x
    return _apply(x, check_transformer_pattern(pattern), generator)


def _apply(x: Tensor, pattern: TransformerLayerPattern, generator: torch.Generator | None) -> Tensor:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"x: transformer_pattern expects (B, T, C) or (B, heads, T, d), got shape {tuple(x.shape)}"
        )
    return x * comb_mask(x.shape, pattern, generator, x.device, x.dtype)


class TransformerPatternDropout(PatternModule):
    """Module form of :func:`transformer_pattern` for one sublayer (AutoDropout, Pham & Le 2021).

    Args:
        pattern: the layer's :class:`~autodropout.search_spaces.TransformerLayerPattern`, validated
            here once (the forward pass does not check it again; :meth:`of_valid` takes a validated
            one); ``None`` is the identity. Which
            sublayers it is placed at is the model's business (see :func:`transformer_site_factories`).
    """

    check = staticmethod(check_transformer_pattern)
    apply = staticmethod(_apply)

    def describe(self, pattern: TransformerLayerPattern) -> str:
        return (
            f"size={pattern.size}, stride={pattern.stride}, span={pattern.span!r}, "
            f"share_heads={pattern.share_heads}, noise={pattern.noise!r}"
        )


def transformer_site_factories(
    pattern: Pattern | Sequence[TransformerLayerPattern],
) -> list[dict[str, Callable[[], TransformerPatternDropout]]]:
    """Per layer, a dict from each sublayer the layer's pattern switches on (names from
    :data:`~autodropout.search_spaces.SUBLAYERS`) to a zero-argument factory of its module.

    ``pattern`` is a ``"transformer"`` :class:`~autodropout.search_spaces.Pattern`, whose sites its
    space validated where it entered, or a list of
    :class:`~autodropout.search_spaces.TransformerLayerPattern`, checked here; a layer that switches
    nothing on gets an empty dict.
    """
    layers = pattern_layers(pattern, "transformer", TransformerLayerPattern, check_transformer_pattern)
    return [{name: partial(TransformerPatternDropout.of_valid, layer) for name in layer.sublayers}
            for layer in layers]


register(
    RegularizerInfo(
        name="transformer_pattern",
        factory=TransformerPatternDropout,
        reference="Pham & Le, AAAI 2021 (arXiv 2101.01761)",
        rate_param=None,
        identity_params={"pattern": None},
        example_params={
            "pattern": TransformerLayerPattern(
                query=True, key=False, value=True, attn_output=True, ffn_hidden=True, ffn_output=False,
                size=2, stride=2, span=2, share_heads=False, noise="bernoulli",
            )
        },
        input_kinds=("seq", "heads"),
    )
)
