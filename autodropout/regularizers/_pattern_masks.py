"""What the learned-pattern regularizers (``pattern_conv``, ``pattern_transformer``) share: reading a
Pattern into per-site layers, checking a mask's shape, resolving its device and dtype, checking
caller-fixed offsets, and the thin module shell. Private: the public API is in those two modules."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autodropout.search_spaces import Pattern

_INT_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def pattern_layers(pattern: Pattern | Sequence[object], kind: str, layer_type: type,
                   check: Callable[[Any], Any]) -> list:
    """The per-site layer patterns of ``pattern``: a ``kind`` Pattern's as they are (its space validated
    them where the pattern entered: decoded tokens, a pattern file, a trial config), or a hand-made list
    of ``layer_type``, each checked here with ``check``."""
    if isinstance(pattern, Pattern):
        if pattern.kind != kind:
            raise ValueError(f"pattern: expected a {kind!r} Pattern, got a {pattern.kind!r} one")
        return list(pattern.layers)
    if not isinstance(pattern, Sequence) or isinstance(pattern, (str, bytes)):
        raise TypeError(
            f"pattern: expected a Pattern or a list of {layer_type.__name__}, got {type(pattern).__name__}"
        )
    for site, layer in enumerate(pattern):
        if not isinstance(layer, layer_type):
            raise TypeError(
                f"pattern: site {site} is a {type(layer).__name__}, expected {layer_type.__name__}"
            )
    return [check(layer) for layer in pattern]


def mask_request(
    shape: Sequence[int], ndims: tuple[int, ...], layout: str,
    device: torch.device | str | None, dtype: torch.dtype | None,
) -> tuple[tuple[int, ...], torch.device, torch.dtype]:
    """``shape`` as ints (``len(shape)`` in ``ndims``, all positive, else an error quoting ``layout``),
    the mask's device (default CPU) and dtype (default ``torch.get_default_dtype()``)."""
    if len(shape) not in ndims or not all(int(s) >= 1 for s in shape):
        raise ValueError(f"shape: expected {layout} with positive sizes, got {tuple(shape)}")
    return (
        tuple(int(s) for s in shape),
        torch.device(device) if device is not None else torch.device("cpu"),
        dtype if dtype is not None else torch.get_default_dtype(),
    )


def fixed_offsets(offsets: object, shape: tuple[int, ...], high: Tensor | int, bounds: str,
                  device: torch.device) -> Tensor:
    """Caller-fixed ``offsets`` as int64 on ``device``: an integer tensor of ``shape`` whose values lie
    in ``[0, high)`` (``high`` broadcasts against it; ``bounds`` is the error that says so)."""
    if not isinstance(offsets, Tensor) or offsets.shape != shape or offsets.dtype not in _INT_DTYPES:
        got = (
            f"{offsets.dtype} {tuple(offsets.shape)}" if isinstance(offsets, Tensor) else type(offsets).__name__
        )
        raise ValueError(f"offsets: expected an integer tensor of shape {shape}, got {got}")
    offsets = offsets.to(device=device, dtype=torch.long)
    if not bool(((offsets >= 0) & (offsets < torch.as_tensor(high, device=device))).all()):
        raise ValueError(f"offsets: {bounds}")
    return offsets


class PatternModule(nn.Module):
    """The thin module shell of a learned-pattern regularizer: a pattern given to the constructor is
    validated once, there (a user's hand-made site pattern enters here), and :meth:`of_valid` takes
    one already validated where it entered (a site of a space's :class:`Pattern`); the forward pass
    masks in training mode and is the identity in eval mode or for ``None``.

    Subclasses set ``check`` (pattern -> pattern, or raise) and ``apply`` (``(x, pattern, generator)``
    -> masked ``x``, for a validated pattern), and describe the pattern in ``describe``.
    """

    check: Callable[[Any], Any]
    apply: Callable[[Tensor, Any, torch.Generator | None], Tensor]

    def __init__(self, pattern: Any) -> None:
        super().__init__()
        self.pattern = None if pattern is None else type(self).check(pattern)

    @classmethod
    def of_valid(cls, pattern: Any) -> PatternModule:
        """The module of a site pattern that was validated where it entered, built without checking it
        again (the site factories' path)."""
        module = cls(None)
        module.pattern = pattern
        return module

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.pattern is None:
            return x
        return type(self).apply(x, self.pattern, None)

    def describe(self, pattern: Any) -> str:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return "pattern=None" if self.pattern is None else self.describe(self.pattern)
