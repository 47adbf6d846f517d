"""Learned embedding dropout patterns (AutoDropout's Transformer space, Pham & Le, AAAI 2021,
arXiv 2101.01761, sec. 3.2; the embedding sites are pattern format version 3's, see
:class:`~autodropout.search_spaces.EmbeddingPattern`).

One pattern per embedding output ``x`` of shape ``(B, T, C)`` (token embedding + position), by unit:

* **"off"**: the identity (no regularization at that embedding).
* **"feature"**: exactly the comb of a Transformer layer pattern along ``C``
  (:func:`~autodropout.regularizers.pattern_transformer.comb_mask`, the same code): runs of
  ``n = min(size, C - 1)`` units every ``n + stride`` units from a uniform offset, ``span``
  consecutive tokens sharing an offset (``"all"``: one per sequence, variational style), kept units
  scaled by ``pitch / stride``; "gaussian" gives each window of the comb one ``N(1, n / stride)``
  multiplier.
* **"token"**: the same comb laid along ``T`` instead, one offset per sample: runs of
  ``n = min(size, T - 1)`` consecutive token vectors are zeroed every ``n + stride`` tokens and the
  kept ones scaled by ``pitch / stride`` (word-level dropout on the embedded sequence; Gal &
  Ghahramani 2016 drop word types instead); "gaussian" multiplies each window of ``pitch`` whole
  tokens by one ``N(1, n / stride)``. The run never covers the whole sequence; a sequence of one token
  has nothing to drop (run 0), so it passes unchanged.

Every unit (every token, for "token") is dropped with probability exactly ``n / pitch``
(:func:`~autodropout.search_spaces.nominal_rate`), so ``E[out] = x`` exactly, for both noises. Eval
mode, ``pattern=None`` and "off" are the identity. Masks are built under ``no_grad`` on the input's
device and in its dtype; random state is ``B`` offsets ("token", or "feature" with span "all") or
``B * ceil(T / span)``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from autodropout.regularizers._pattern_masks import PatternModule, mask_request
from autodropout.regularizers.pattern_transformer import check_comb, checked_offsets, comb_mask
from autodropout.regularizers.registry import RegularizerInfo, register
from autodropout.search_spaces import EMBEDDING_UNITS, EmbeddingPattern, Pattern


def check_embedding_pattern(pattern: object) -> EmbeddingPattern:
    """Return ``pattern`` if it describes a usable mask, else raise naming the offending field."""
    if not isinstance(pattern, EmbeddingPattern):
        raise TypeError(f"pattern: expected an EmbeddingPattern or None, got {type(pattern).__name__}")
    if pattern.unit not in EMBEDDING_UNITS:
        raise ValueError(f"pattern.unit: expected one of {list(EMBEDDING_UNITS)}, got {pattern.unit!r}")
    check_comb(pattern)
    return pattern


def embedding_pattern_mask(
    shape: Sequence[int],
    pattern: EmbeddingPattern,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    offsets: Tensor | None = None,
) -> Tensor:
    """The multiplier that :func:`embedding_pattern` applies (see the module docstring).

    Args:
        shape: ``(B, T, C)``, ``C >= 2``.
        pattern: the embedding's pattern.
        generator: source of offsets and normals; must live on ``device`` (default: torch's global one).
        device, dtype: of the mask (the activation's); default CPU and ``torch.get_default_dtype()``.
        offsets: fixes the offsets instead of drawing them: integers in ``[0, pitch)`` with
            ``pitch = n + stride``; shape ``(B, ceil(T / span))`` for "feature" (``(B, 1)`` for "all"),
            ``(B, 1)`` for "token" (ignored where nothing is drawn: "off", or one token).

    Returns:
        A tensor broadcastable to ``shape``: ``(B, T', C)`` for "feature" (``T' = 1`` when one offset
        covers the sequence), ``(B, T, 1)`` for "token", ones ``(1, 1, 1)`` when nothing is dropped.
    """
    check_embedding_pattern(pattern)
    dims, device, dtype = mask_request(shape, (3,), "(B, T, C)", device, dtype)
    mask = _mask(dims, pattern, generator, device, dtype, offsets)
    return torch.ones((1, 1, 1), device=device, dtype=dtype) if mask is None else mask


def _mask(shape: Sequence[int], pattern: EmbeddingPattern, generator: torch.Generator | None,
          device: torch.device, dtype: torch.dtype, offsets: Tensor | None = None) -> Tensor | None:
    """:func:`embedding_pattern_mask` for a validated ``pattern``; ``None`` when nothing is dropped."""
    axis = _comb_axis(shape, pattern)
    if axis is None:
        return None
    axis_shape, comb = axis
    mask = comb_mask(axis_shape, comb, generator, device, dtype, checked_offsets(axis_shape, comb, offsets, device))
    return mask.transpose(1, 2) if pattern.unit == "token" else mask


def _comb_axis(shape: Sequence[int], pattern: EmbeddingPattern) -> tuple[tuple[int, ...], EmbeddingPattern] | None:
    """The shape and comb that :func:`comb_mask` draws for ``pattern`` on ``(B, T, C)``: the hidden
    axis itself, or for "token" the token axis as a ``(B, 1, T)`` one with one offset per sample;
    ``None`` when nothing can be dropped."""
    batch, tokens, hidden = shape
    if hidden < 2:
        raise ValueError("embedding pattern: a hidden axis of 1 unit cannot be masked without dropping it whole")
    if pattern.unit == "off" or (pattern.unit == "token" and tokens < 2):
        return None
    if pattern.unit == "token":
        return (batch, 1, tokens), dataclasses.replace(pattern, span="all")
    return tuple(shape), pattern


def embedding_pattern(
    x: Tensor,
    pattern: EmbeddingPattern | None,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply a learned embedding pattern to ``x`` of shape ``(B, T, C)``; same shape out, the identity
    when not ``training``, for ``None`` and for unit "off"."""
    if not training or pattern is None:
        return x
    return _apply(x, check_embedding_pattern(pattern), generator)


def _apply(x: Tensor, pattern: EmbeddingPattern, generator: torch.Generator | None) -> Tensor:
    if x.ndim != 3:
        raise ValueError(f"x: embedding_pattern expects (B, T, C), got shape {tuple(x.shape)}")
    mask = _mask(x.shape, pattern, generator, x.device, x.dtype)
    return x if mask is None else x * mask


class EmbeddingPatternDropout(PatternModule):
    """Module form of :func:`embedding_pattern` for one embedding output (AutoDropout, Pham & Le 2021).

    Args:
        pattern: the site's :class:`~autodropout.search_spaces.EmbeddingPattern`, validated here once
            (:meth:`of_valid` takes a validated one); ``None`` (and unit "off") is the identity.
    """

    check = staticmethod(check_embedding_pattern)
    apply = staticmethod(_apply)

    def describe(self, pattern: EmbeddingPattern) -> str:
        if pattern.unit == "off":
            return "unit='off'"
        span = "" if pattern.unit == "token" else f", span={pattern.span!r}"
        return f"unit={pattern.unit!r}, size={pattern.size}, stride={pattern.stride}{span}, noise={pattern.noise!r}"


def embedding_site_factories(
    pattern: Pattern | Sequence[EmbeddingPattern],
) -> list[Callable[[], EmbeddingPatternDropout] | None]:
    """Per embedding site, a zero-argument factory of its module, or ``None`` for "off" (nothing is
    placed there). ``pattern`` is a ``"transformer"`` :class:`~autodropout.search_spaces.Pattern`
    (its ``embeddings``, which its space validated where it entered; none for a pattern of a space
    without embedding sites) or a list of :class:`~autodropout.search_spaces.EmbeddingPattern`,
    checked here."""
    if isinstance(pattern, Pattern):
        if pattern.kind != "transformer":
            raise ValueError(f"pattern: expected a 'transformer' Pattern, got a {pattern.kind!r} one")
        embeddings = list(pattern.embeddings)
    else:
        embeddings = [check_embedding_pattern(embedding) for embedding in pattern]
    return [None if e.unit == "off" else partial(EmbeddingPatternDropout.of_valid, e) for e in embeddings]


register(
    RegularizerInfo(
        name="embedding_pattern",
        factory=EmbeddingPatternDropout,
        reference="Pham & Le, AAAI 2021 (arXiv 2101.01761)",
        rate_param=None,
        identity_params={"pattern": None},
        example_params={"pattern": EmbeddingPattern(unit="feature", size=2, stride=2, span=2, noise="bernoulli")},
        input_kinds=("seq",),
    )
)
