"""A hand-designed mask regularizer as a pattern of the search space, and the drop rate at each site.

The study judges a learned pattern against regularizers whose rates were tuned (``study.baselines``),
so the pattern spaces must contain them: for each mask baseline placed where it goes
(:meth:`Regularization.model_sites`), at any rate of its tuning domain, some pattern of the space acts
at the same sites with expected drop rates within :data:`TOLERANCE` (tests/tasks/
test_baseline_pattern.py checks it for every preset). :func:`pattern_like` returns that pattern (the
start point of ``autodropout search --start-from dropout:p=0.135``); :func:`site_rates` is what both
sides are compared on, read from the real placement rather than restated.

Site keys: ``"block 3"`` (a ConvNet site; ``"block 3 shortcut"`` when a pattern also masks the
shortcut), ``"layer_sites[1].attn_output"`` (a Transformer sublayer, named by the model's stack
argument), ``"embedding 0"`` (the embedding outputs, in the model's order).
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from autodropout import regularizers
from autodropout.core.errors import PatternError
from autodropout.models import ConvSites, SiteLayout
from autodropout.search_spaces import ConvLayerPattern, Pattern, SearchSpace
from autodropout.search_spaces.transformer import EmbeddingPattern, TransformerLayerPattern, nominal_rate
from autodropout.tasks.regularization import Regularization

#: Largest allowed gap between a baseline's rate and its pattern's, per site (issue 20).
TOLERANCE = 0.02
#: Registry regularizers whose noise is a {0, 1/(1-p)} mask, so a pattern can express them; per method
#: the granularity of its mask in each space (``conv``: the unit of a conv layer; ``span``: tokens
#: sharing a Transformer mask). Spatial and variational dropout both share a mask over the positions
#: of a channel: over H x W on a map, over the tokens of a sequence. DropPath on a Transformer (stochastic
#: depth: whole residual branches) has no pattern; it is no default Transformer baseline either.
MASKS: dict[str, dict[str, Any]] = {
    "dropout": {"conv": "element", "span": 1},
    "spatial_dropout": {"conv": "channel", "span": "all"},
    "dropblock": {"conv": "element"},  # matched on rate (DropBlock's own blocks are not tiles)
    "droppath": {"conv": "sample"},
    "variational_dropout": {"conv": "channel", "span": "all"},
}
#: Sublayers whose hidden axis is one attention head (per-head tensors (B, heads, T, d)).
_PER_HEAD = {"query", "key", "value", "cross_query", "cross_key", "cross_value"}


def regularizer_rate(regularization: Regularization) -> float | None:
    """The nominal drop rate of a registry regularizer (its ``rate_param``, or that parameter's default)."""
    info = regularizers.info(regularization.name)
    if info.rate_param is None:
        return None
    if info.rate_param in regularization.params:
        return float(regularization.params[info.rate_param])
    return float(inspect.signature(info.factory).parameters[info.rate_param].default)


def placed_sites(regularization: Regularization, layout: SiteLayout) -> Iterator[tuple[str, Callable]]:
    """``(site key, factory)`` for every site where ``regularization`` puts a module."""
    kwargs = regularization.model_sites(layout)
    if isinstance(layout, ConvSites):
        for index, factory in enumerate(kwargs[layout.argument]):
            if factory is not None:
                yield f"block {index}", factory
        return
    embeddings = kwargs[layout.embedding_argument]
    for index, factory in enumerate(embeddings if isinstance(embeddings, (list, tuple)) else
                                    [embeddings] * layout.embeddings):
        if factory is not None:
            yield f"embedding {index}", factory
    for stack in layout.layer_stacks:
        for index, sites in enumerate(kwargs[stack.argument] or ()):
            for name, factory in (sites or {}).items():
                if factory is not None:
                    yield f"{stack.argument}[{index}].{name}", factory


def site_rates(regularization: Regularization, layout: SiteLayout,
               shapes: Sequence[tuple[int, int, int]]) -> dict[str, float | None]:
    """Expected drop rate at every site where ``regularization`` acts (``None``: noise that is not a mask).

    Args:
        layout: the model's sites; ``shapes``: per pattern site ``(C, H, W)`` (conv) or ``(T, C, heads)``
            (Transformer layer), as :func:`autodropout.tasks.task_sites` gives them.
    """
    if regularization.pattern is None:
        rate = regularizer_rate(regularization) if regularization.name in MASKS else None
        return {key: rate for key, _ in placed_sites(regularization, layout)}
    rates: dict[str, float | None] = {}
    for key, factory in placed_sites(regularization, layout):
        module = factory()
        rates[key] = _pattern_rate(key, module.pattern, layout, shapes)
        if getattr(module, "masks_residual", False):
            rates[f"{key} shortcut"] = rates[key]
    return rates


def _pattern_rate(key: str, layer: Any, layout: SiteLayout, shapes: Sequence[tuple[int, int, int]]) -> float | None:
    if isinstance(layer, ConvLayerPattern):
        _, height, width = shapes[int(key.split()[1])]
        return float(layer.density(height, width))
    tokens, channels, heads = shapes[0]
    if layer.noise != "bernoulli":
        return None
    if isinstance(layer, EmbeddingPattern):
        return float(layer.rate(tokens, channels))
    # The feed-forward hidden axis (d_ff >= d_model in every model here) never cuts a run that d_model does not.
    return float(layer.rate(channels // heads if key.rsplit(".", 1)[1] in _PER_HEAD else channels))


def pattern_like(regularization: Regularization, space: SearchSpace, layout: SiteLayout,
                 shapes: Sequence[tuple[int, int, int]]) -> Pattern:
    """The pattern of ``space`` nearest to a mask regularizer placed where the baseline goes.

    Conv: every site gets the method's unit (element, channel or sample) at the grid rate nearest to
    its rate, shortcut untouched. Transformer: every layer switches on ``attn_output`` and ``ffn_output``
    (the residual-dropout sites, which also drive a decoder's cross-attention output) and every embedding
    drops features, each with the (size, stride) whose rate is nearest, span 1 (dropout) or ``"all"``
    (variational dropout), Bernoulli noise.

    Raises:
        PatternError: ``regularization`` is not a mask regularizer (``none``, Y-Drop, Sparseout, ...).
    """
    if regularization.name not in MASKS:
        raise PatternError(f"{regularization.describe()} is not a dropout mask, so no pattern stands for it; "
                           f"start from one of: {', '.join(MASKS)}, or a pattern file")
    rate = regularizer_rate(regularization)
    granularity = MASKS[regularization.name]
    if isinstance(layout, ConvSites):
        if "conv" not in granularity:
            raise PatternError(f"{regularization.name} acts on sequences, not on a ConvNet's maps")
        return _conv_like(space, granularity["conv"], rate)
    if "span" not in granularity:
        raise PatternError(f"{regularization.name} acts on feature maps, not on a Transformer's sequences")
    return _transformer_like(space, granularity["span"], rate, shapes[0])


def _nearest_comb(values: dict[str, tuple[Any, ...]], rate: float, hidden: int) -> tuple[int, int]:
    """The (size, stride) of ``values`` whose comb rate on ``hidden`` units is nearest ``rate`` (ties: smaller size)."""
    return min(((s, t) for s in values["size"] for t in values["stride"]),
               key=lambda st: (abs(float(nominal_rate(st[0], st[1], hidden)) - rate), st[0]))


def _conv_like(space: SearchSpace, unit: str, rate: float) -> Pattern:
    values = dict(space.decision_types)
    rates = [r for r in values["rate"] if r is not None]
    first = {name: choices[0] for name, choices in space.decision_types}
    layer = ConvLayerPattern(**{**first, "unit": unit, "rate": min(rates, key=lambda r: abs(r - rate)),
                                "residual": False})
    pattern = Pattern(space.kind, (layer,) * space.num_sites)
    space.validate(pattern)
    return pattern


def _transformer_like(space: SearchSpace, span: int | str, rate: float, shape: tuple[int, int, int]) -> Pattern:
    channels = shape[1]
    values = dict(space.decision_types)
    size, stride = _nearest_comb(values, rate, channels)
    switches = {name: name in ("attn_output", "ffn_output") for name in
                ("query", "key", "value", "attn_output", "ffn_hidden", "ffn_output")}
    layer = TransformerLayerPattern(**switches, size=size, stride=stride, span=span,
                                    share_heads=values["share_heads"][0], noise="bernoulli")
    embeddings = ()
    if space.num_embeddings:
        e_size, e_stride = _nearest_comb(dict(space.embedding_types), rate, channels)
        embeddings = (EmbeddingPattern(unit="feature", size=e_size, stride=e_stride, span=span,
                                       noise="bernoulli"),) * space.num_embeddings
    pattern = dataclasses.replace(Pattern(space.kind, (layer,) * space.num_sites), embeddings=embeddings)
    space.validate(pattern)
    return pattern
