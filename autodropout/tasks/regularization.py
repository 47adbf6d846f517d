"""What a task puts at its model's sites: a learned pattern, a registry regularizer, or nothing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from autodropout import regularizers
from autodropout.config import ConfigError
from autodropout.search_spaces import Pattern

Factory = Callable[[], nn.Module]


@dataclass(frozen=True)
class Regularization:
    """Either ``pattern`` (a learned :class:`Pattern`) or ``name`` + ``params`` (a registry entry),
    or neither (no regularization at the sites)."""

    pattern: Pattern | None = None
    name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pattern is not None and self.name is not None:
            raise ValueError("give either a pattern or a regularizer name, not both")
        if self.name is not None:
            info = regularizers.info(self.name)  # unknown names fail here, listing the valid ones
            if "layer" in info.input_kinds:
                raise ConfigError(
                    f"regularizer {self.name!r} wraps a layer and cannot be placed at activation sites; "
                    "wrap the layers yourself with autodropout.regularizers.create"
                )
            if "pattern" in info.parameters:
                raise ConfigError(f"regularizer {self.name!r} is a learned pattern: give a pattern file instead "
                                  "(autodropout train ... --pattern FILE)")
            unknown = sorted(set(self.params) - set(info.parameters))
            if unknown:
                raise ConfigError(f"regularizer {self.name!r} has no parameter {unknown[0]!r}; "
                                  f"parameters: {', '.join(info.parameters)}")

    @classmethod
    def none(cls) -> "Regularization":
        return cls()

    def factory(self, channels: int | None = None) -> Factory | None:
        """Zero-argument factory of the registry regularizer, or None.

        ``channels`` is the site's channel count, passed on to methods that need it to build their
        own layers (TargetDrop's attention) unless the user gave it.
        """
        if self.name is None:
            return None
        name, params = self.name, dict(self.params)
        if channels is not None and "channels" in regularizers.info(name).parameters and "channels" not in params:
            params["channels"] = channels
        return lambda: regularizers.create(name, **params)

    def describe(self) -> str:
        if self.pattern is not None:
            return f"learned {self.pattern.kind} pattern ({len(self.pattern.layers)} sites)"
        if self.name is not None:
            args = ", ".join(f"{k}={v}" for k, v in self.params.items())
            return f"{self.name}({args})"
        return "none"


def transformer_layer_sites(regularization: Regularization, n_layers: int,
                            cross_attention: bool = False) -> tuple[list[dict[str, Factory]] | None, Factory | None]:
    """Per-layer site factories and the embedding factory of a Transformer for ``regularization``.

    A learned pattern acts where its layer patterns switch it on (decoder layers of a translation
    model also get their cross-attention sites from the same switches; see
    :mod:`autodropout.mapping`). A registry regularizer goes where the classic residual dropout of
    Vaswani et al. (2017, sec. 5.4) goes: each attention output and FFN output before the residual
    add, and the embeddings (token + position); ``dropout`` there is the classic baseline.
    """
    if regularization.pattern is not None:
        from autodropout.regularizers.pattern_transformer import transformer_site_factories

        sites = transformer_site_factories(regularization.pattern)
        if len(sites) != n_layers:
            raise ValueError(f"pattern has {len(sites)} sites, the model has {n_layers} layers")
        if cross_attention:
            sites = [{**s, **{f"cross_{k}": f for k, f in s.items()
                             if k in ("query", "key", "value", "attn_output")}} for s in sites]
        return sites, None
    factory = regularization.factory()
    if factory is None:
        return None, None
    names = ("attn_output", "ffn_output") + (("cross_attn_output",) if cross_attention else ())
    return [{name: factory for name in names} for _ in range(n_layers)], factory
