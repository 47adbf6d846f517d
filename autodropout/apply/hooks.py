"""Attach a learned pattern to any ``nn.Module`` through forward hooks (Pham & Le 2021 transfer their
patterns to networks the search never saw; this is how a user's own model gets one).

>>> import autodropout as ad
>>> handle = ad.apply_patterns(model, "best_patterns.json", where=nn.BatchNorm2d)
>>> train(model)          # the training script is unchanged
>>> handle.remove()       # the model is exactly as before

Semantics:

* **Where.** ``where`` selects modules by type (``nn.BatchNorm2d``, or a tuple of types, by
  ``isinstance``) or by name (an ``fnmatch`` pattern such as ``"layer*.bn2"`` or a list of them,
  matched against the names of ``model.named_modules()``). Selected modules are taken in
  ``named_modules()`` order (registration order, which is forward order in the usual models).
* **Which site pattern.** The ``N`` site patterns are laid onto the ``M`` selected modules by
  relative depth, :func:`autodropout.patterns.mapping.depth_map`, the rule every transfer uses.
* **What happens.** In training mode (``module.training``), each selected module's output is
  multiplied by a fresh mask of its site pattern, drawn by the same functions the search trains
  with. In eval mode the hook returns the output untouched. Nothing is added to the model: its
  ``state_dict``, parameters and ``repr`` do not change, and :meth:`PatternHandle.remove` removes the
  hooks.
* **Conv patterns** need ``(B, C, H, W)`` outputs (put them after BatchNorm2d, as the paper does).
  The ``residual`` token is not used: a hook sees one module's output, not a block's shortcut.
* **Transformer patterns** need ``(B, T, C)`` outputs. A hooked module's output is treated as one
  ``(B, T, C)`` sublayer: the layer pattern's geometry (``size``, ``stride``, ``span``, ``noise``)
  applies to it when the layer pattern switches on at least one sublayer; a layer pattern that
  switches every sublayer off leaves its module alone (the search chose no dropout there).
  ``share_heads`` does not matter for 3-D outputs. Only the layer patterns are attached: a
  pattern's embedding patterns (format version 3) need the embedding outputs, which ``where`` does
  not tell apart from sublayers; put them there with
  :class:`~autodropout.regularizers.pattern_embedding.EmbeddingPatternDropout` (or a hook of
  :func:`~autodropout.regularizers.pattern_embedding.embedding_pattern`).

An output of the wrong kind (not a tensor, or a shape that does not fit the pattern kind) raises an
error naming the module and the shape at the first training forward pass.
"""
from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from autodropout.patterns import load_patterns
from autodropout.patterns.mapping import depth_map
from autodropout.regularizers.pattern_conv import ConvPatternDropout, check_conv_pattern
from autodropout.regularizers.pattern_transformer import TransformerPatternDropout, check_transformer_pattern
from autodropout.search_spaces import Pattern, PatternSet

#: A module type, a tuple of types, an ``fnmatch`` name pattern, or a list of name patterns.
Where = type | tuple | str | Sequence[str]
#: A pattern, a loaded pattern file, a file's path or a shipped pattern's name (``autodropout list patterns``).
PatternSource = Pattern | PatternSet | str | os.PathLike

_SHAPES = {"conv": (4, "(B, C, H, W)"), "transformer": (3, "(B, T, C)")}
_PAUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("autodropout_patterns_paused", default=False)


@contextlib.contextmanager
def patterns_paused() -> Iterator[None]:
    """Inside this block every pattern hook passes outputs through untouched, even in training mode
    (BatchNorm recalibration runs BatchNorm in training mode with the regularizers off)."""
    token = _PAUSED.set(True)
    try:
        yield
    finally:
        _PAUSED.reset(token)


@dataclass(frozen=True)
class AppliedSite:
    """One hooked module: its name in the model, the source site whose pattern it takes, that
    site's layer pattern, and whether the pattern acts there (see the module docstring)."""

    name: str
    site: int
    layer: Any
    active: bool


class PatternHandle:
    """What :func:`apply_patterns` returns: the hooked sites and :meth:`remove`.

    Also a context manager: ``with apply_patterns(...): train(model)`` removes the hooks on exit.
    """

    def __init__(self, hooks: list[RemovableHandle], sites: tuple[AppliedSite, ...], kind: str) -> None:
        self._hooks = hooks
        self.sites = sites
        self.kind = kind

    def remove(self) -> None:
        """Remove every hook; the model behaves exactly as before. Calling it twice is harmless."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def attached(self) -> bool:
        return bool(self._hooks)

    def __enter__(self) -> PatternHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "attached" if self.attached else "removed"
        names = ", ".join(f"{s.name}<-site {s.site}" for s in self.sites)
        return f"PatternHandle({self.kind}, {state}: {names})"


class _PatternHook:
    """Forward hook multiplying one module's output by a mask of one site pattern."""

    def __init__(self, name: str, kind: str, layer: Any, active: bool, generator: torch.Generator | None) -> None:
        self.name, self.kind, self.layer, self.active, self.generator = name, kind, layer, active, generator

    def __call__(self, module: nn.Module, args: Any, output: Any) -> torch.Tensor | None:
        if not module.training or _PAUSED.get():
            return None
        ndim, layout = _SHAPES[self.kind]
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"apply_patterns: module {self.name!r} ({type(module).__name__}) returns "
                            f"{type(output).__name__}; a {self.kind} pattern needs a tensor of shape {layout}")
        if output.ndim != ndim:
            raise ValueError(f"apply_patterns: module {self.name!r} ({type(module).__name__}) output has shape "
                             f"{tuple(output.shape)}; a {self.kind} pattern needs {layout} activations")
        if not self.active:
            return None
        # The layer was checked once, by apply_patterns: the modules' mask step does not check it again.
        module = ConvPatternDropout if self.kind == "conv" else TransformerPatternDropout
        return module.apply(output, self.layer, self.generator)


def apply_patterns(
    model: nn.Module,
    pattern: PatternSource,
    where: Where,
    *,
    rank: int = 1,
    generator: torch.Generator | None = None,
) -> PatternHandle:
    """Attach ``pattern`` to the modules of ``model`` chosen by ``where`` (see the module docstring).

    Args:
        model: any ``nn.Module``; it is not modified (hooks only).
        pattern: a :class:`~autodropout.search_spaces.Pattern`, a loaded
            :class:`~autodropout.search_spaces.PatternSet`, the path of a pattern JSON file, or the name
            of a shipped pattern (``"lm-transformer-lstm"``), read as :func:`autodropout.load_patterns` reads it.
        where: a module type or tuple of types (``isinstance``), or an ``fnmatch`` pattern or list of
            them matched against ``model.named_modules()`` names (e.g. ``"layer*.bn2"``).
        rank: which pattern of a file or pattern set (1 = best).
        generator: source of the masks' randomness (on the activations' device); default: torch's
            global generator, so ``torch.manual_seed`` makes runs repeatable.

    Returns:
        A :class:`PatternHandle`; ``.remove()`` detaches everything.

    Raises:
        TypeError: ``model`` is not a module, or ``where`` / ``pattern`` has the wrong type.
        ValueError: nothing matches ``where``.
        PatternFormatError: the pattern file is invalid; ``KeyError`` for an unknown ``rank``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    resolved = _resolve_pattern(pattern, rank)
    check = check_conv_pattern if resolved.kind == "conv" else check_transformer_pattern
    layers = [check(layer) for layer in resolved.layers]
    modules = select_modules(model, where)
    sites = tuple(
        AppliedSite(name, site, layers[site], resolved.kind == "conv" or bool(layers[site].sublayers))
        for (name, _), site in zip(modules, depth_map(len(layers), len(modules)))
    )
    hooks = [
        module.register_forward_hook(_PatternHook(s.name, resolved.kind, s.layer, s.active, generator))
        for (_, module), s in zip(modules, sites)
    ]
    return PatternHandle(hooks, sites, resolved.kind)


def select_modules(model: nn.Module, where: Where) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` pairs of ``model`` chosen by ``where``, in ``named_modules()`` order."""
    named = list(model.named_modules())
    if isinstance(where, type) or (isinstance(where, tuple) and where and all(isinstance(w, type) for w in where)):
        types = where if isinstance(where, tuple) else (where,)
        bad = [t.__name__ for t in types if not issubclass(t, nn.Module)]
        if bad:
            raise TypeError(f"where: {bad[0]} is not an nn.Module subclass")
        chosen = [(n, m) for n, m in named if isinstance(m, types)]
        wanted = " or ".join(t.__name__ for t in types)
    elif isinstance(where, str) or (
        isinstance(where, Sequence) and not isinstance(where, tuple) and where
        and all(isinstance(w, str) for w in where)
    ):
        globs = [where] if isinstance(where, str) else list(where)
        # The root module's name is "", which "*" would match: a hook there would see the logits.
        chosen = [(n, m) for n, m in named if n and any(fnmatch.fnmatchcase(n, g) for g in globs)]
        wanted = f"name pattern {' or '.join(map(repr, globs))}"
    else:
        raise TypeError(
            "where: expected an nn.Module subclass, a tuple of them, an fnmatch name pattern or a list "
            f"of them, got {where!r}"
        )
    if not chosen:
        examples = ", ".join(n for n, _ in named[1:6]) or "(no submodules)"
        raise ValueError(f"where: no module of {type(model).__name__} matches {wanted} "
                         f"(module names look like: {examples})")
    return chosen


def _resolve_pattern(pattern: PatternSource, rank: int) -> Pattern:
    if isinstance(pattern, Pattern):
        return pattern
    if isinstance(pattern, (str, os.PathLike)):
        pattern = load_patterns(pattern)
    if isinstance(pattern, PatternSet):
        return pattern.get(rank)
    raise TypeError(f"pattern: expected a Pattern, a PatternSet or a pattern file path, got {type(pattern).__name__}")
