"""Name -> regularizer registry.

Every entry maps an activation tensor to a tensor of the same shape (``dropconnect`` wraps a layer
instead). Entries also say which constructor parameter is the nominal drop rate and which parameters
turn the method into the identity, so the property tests in ``tests/regularizers`` can be run over
the whole registry without special cases.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from autodropout.core.errors import ConfigError
from autodropout.core.registry import Registry


class RegularizerArgumentError(ConfigError, TypeError):
    """Parameters that the regularizer's constructor does not take (unknown, missing or repeated);
    a ``TypeError`` as a Python caller expects from a bad call."""


@dataclass(frozen=True)
class RegularizerInfo:
    """What the registry knows about one method.

    Attributes:
        name: registry name, e.g. ``"dropblock"``.
        factory: the ``nn.Module`` class (or callable) that builds it.
        reference: the paper the method comes from, as ``Authors, venue year (arXiv id)``.
        rate_param: constructor parameter that is the nominal drop probability, or ``None`` when the
            rate follows from other parameters (e.g. a learned pattern's geometry).
        identity_params: parameters that make the module the identity in training mode.
        example_params: parameters the shared property tests and docs use; defaults when empty.
        input_kinds: which activation layouts it accepts: ``"conv"`` (B, C, H, W), ``"seq"`` (B, T, C),
            ``"flat"`` (B, N), ``"heads"`` (B, heads, T, d), or ``"layer"`` for wrappers.
        unbiased: ``E[out] = x`` elementwise over the method's randomness in training mode (for a
            ``"layer"`` wrapper: ``E[out] = layer(x)``). False for methods that only preserve the total
            activation mass or that are deterministic given the input.
        zeros_rate: with ``example_params``, about a ``rate_param`` fraction of the training outputs
            are exact zeros (on inputs without zeros; for a ``"layer"`` wrapper: of the masked weight).
            False where the noise is not zeros (e.g. Gaussian) or the rate counts something else.
    """

    name: str
    factory: Callable[..., nn.Module]
    reference: str
    rate_param: str | None = "p"
    identity_params: dict[str, Any] = field(default_factory=dict)
    example_params: dict[str, Any] = field(default_factory=dict)
    input_kinds: tuple[str, ...] = ("conv", "seq", "flat")
    unbiased: bool = True
    zeros_rate: bool = True

    @property
    def parameters(self) -> tuple[str, ...]:
        """The constructor's parameter names, in order."""
        return tuple(inspect.signature(self.factory).parameters)


_REGISTRY: Registry[RegularizerInfo] = Registry("regularizer")


def register(info: RegularizerInfo) -> RegularizerInfo:
    return _REGISTRY.register(info.name, info)


def available() -> list[str]:
    """Sorted names of every registered regularizer."""
    return _REGISTRY.names()


def info(name: str) -> RegularizerInfo:
    """Registry entry for ``name``; unknown names raise :class:`~autodropout.core.errors.UnknownNameError`
    (a ``KeyError``) listing the valid ones."""
    return _REGISTRY.get(name)


def create(name: str, **params: Any) -> nn.Module:
    """Build the regularizer ``name`` with ``params`` (see each module's docstring).

    Parameters the constructor does not take raise :class:`RegularizerArgumentError`. They are found
    by binding the constructor's signature before calling it, so that a ``TypeError`` raised inside
    the constructor (a bug, or a deliberate type check of an argument) propagates as it is instead of
    reading as a bad configuration.
    """
    entry = info(name)
    try:
        inspect.signature(entry.factory).bind(**params)
    except TypeError as exc:
        raise RegularizerArgumentError(f"regularizer {name!r}: {exc}") from None
    return entry.factory(**params)
