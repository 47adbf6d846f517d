"""Mapping a pattern onto a model with a different number of sites (Pham & Le 2021 transfer
WRN-28-2 patterns to WRN-28-10 and a PTB language model's pattern to WMT translation).

Rule (relative depth): target site ``j`` of ``M`` takes the pattern of source site
``floor((j + 0.5) / M * N)`` of ``N``, i.e. the source site at the same relative depth, measured at
site centres. So 1 source site fills every target site; a 1-site target takes the middle source
site; equal counts map identically; WRN-28-2 -> WRN-28-10 (12 -> 12 sites) is the identity.

Encoder-decoder targets: a language-model pattern (one stack of N layers) is mapped by relative
depth onto the encoder (self-attention and FFN sites) and, separately, onto the decoder; each decoder
layer's pattern also drives its cross-attention sites (the query/key/value/attn_output switches of
that layer apply to cross-attention too), since a language model has no cross-attention to learn
from. A pattern that already has exactly ``n_enc + n_dec`` sites is used as is.

Embedding sites (Transformer patterns, format version 3) are mapped by the same relative-depth rule,
in forward order: the language model's one embedding pattern goes onto both the translation model's
source and target embeddings; a translation pattern's two go onto a language model's one as the
middle of two (the target's). A pattern without embedding patterns (a version-2 file) gets "off" at
every embedding site of the target (``TransformerSpace.off_embedding``: what it did there before,
nothing), so it validates and trains as it did; a target without embedding sites drops them.
"""
from __future__ import annotations

from typing import Any

from autodropout.search_spaces import Pattern, PatternError, SearchSpace, TransformerSpace


def depth_map(num_source: int, num_target: int) -> list[int]:
    """Source site index for each of ``num_target`` sites (the rule above)."""
    if num_source < 1 or num_target < 1:
        raise ValueError(f"site counts must be positive, got {num_source} -> {num_target}")
    return [min(num_source - 1, int((j + 0.5) * num_source / num_target)) for j in range(num_target)]


def map_pattern(pattern: Pattern, target: SearchSpace, stacks: tuple[int, ...] | None = None) -> Pattern:
    """``pattern`` re-laid onto ``target``'s sites, then validated against ``target``.

    Args:
        stacks: site counts of consecutive layer stacks of the target (``(n_enc, n_dec)`` for an
            encoder-decoder); each stack gets the whole source pattern by relative depth. ``None``
            means one stack.
    Raises:
        PatternError: the pattern's kind does not match the target space (conv vs transformer).
    """
    if pattern.kind != target.kind:
        raise PatternError(
            f"a {pattern.kind} pattern cannot be applied to a {target.kind} model "
            f"({'ConvNet' if pattern.kind == 'conv' else 'Transformer'} patterns need "
            f"{'ConvNet' if pattern.kind == 'conv' else 'Transformer'} targets)"
        )
    if len(pattern.layers) == target.num_sites:
        layers = pattern.layers
    else:
        stacks = stacks or (target.num_sites,)
        if sum(stacks) != target.num_sites:
            raise ValueError(f"stacks {stacks} do not add up to the target's {target.num_sites} sites")
        layers = tuple(pattern.layers[i] for n in stacks for i in depth_map(len(pattern.layers), n))
    mapped = Pattern(pattern.kind, tuple(layers), _embeddings(pattern.embeddings, target))
    target.validate(mapped)
    return mapped


def _embeddings(embeddings: tuple[Any, ...], target: SearchSpace) -> tuple[Any, ...]:
    """``embeddings`` laid onto ``target``'s embedding sites (module docstring)."""
    if not target.num_embeddings:
        return ()
    if not embeddings:
        assert isinstance(target, TransformerSpace)  # the only space with embedding sites
        return (target.off_embedding(),) * target.num_embeddings
    return tuple(embeddings[i] for i in depth_map(len(embeddings), target.num_embeddings))
