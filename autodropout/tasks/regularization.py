"""What a task puts at its model's sites: a learned pattern, a registry regularizer, or nothing,
and the one function that turns it into a model's site arguments (timm's ``drop_blocks()`` plays
this role in its ResNet)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from autodropout import regularizers
from autodropout.core.errors import ConfigError
from autodropout.models import ConvSites, Factory, SiteLayout, TransformerSites, residual_sites
from autodropout.search_spaces import Pattern


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
            self._check_params(info.parameters)

    def _check_params(self, parameters: tuple[str, ...]) -> None:
        """Build the regularizer once, so that a bad value (``p=2``) is an error before training,
        not a traceback in the middle of it; the global RNG is left untouched."""
        params = dict(self.params)
        if "channels" in parameters and "channels" not in params:
            params["channels"] = 64  # each site passes its own (see factory); any valid count checks the rest
        try:
            with torch.random.fork_rng(devices=[]):
                regularizers.create(self.name, **params)
        except ValueError as exc:  # a bad value, or a RegularizerArgumentError; a TypeError inside is a bug
            raise ConfigError(f"regularizer {self.name!r}: {exc}") from None

    @classmethod
    def none(cls) -> Regularization:
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
            embeddings = len(self.pattern.embeddings)
            more = f" and {embeddings} embedding site{'s' * (embeddings != 1)}" if embeddings else ""
            return f"learned {self.pattern.kind} pattern ({len(self.pattern.layers)} sites{more})"
        if self.name is not None:
            args = ", ".join(f"{k}={v}" for k, v in self.params.items())
            return f"{self.name}({args})"
        return "none"

    def model_sites(self, layout: SiteLayout) -> dict[str, Any]:
        """The site keyword arguments of the model whose sites are ``layout``.

        A learned pattern acts where its site patterns say (a conv pattern at each ConvNet site; a
        Transformer layer pattern at the sublayers it switches on, decoder layers also at the
        cross-attention sites of the same switches, see :mod:`autodropout.patterns.mapping`; its embedding
        patterns after the embeddings, in forward order, and nothing there when it has none, as a
        version-2 pattern). A registry regularizer goes at every ConvNet site, or where the residual
        dropout of Vaswani et al. (2017, sec. 5.4) goes in a Transformer (each sublayer output before
        the residual add, and after every embedding).
        """
        sites = layout.stacks
        if self.pattern is not None and len(self.pattern.layers) != sum(sites):
            raise ValueError(f"pattern has {len(self.pattern.layers)} sites, the model has {sum(sites)}")
        embeddings = len(self.pattern.embeddings) if self.pattern is not None else 0
        if embeddings and (not isinstance(layout, TransformerSites) or embeddings != layout.embeddings):
            have = layout.embeddings if isinstance(layout, TransformerSites) else 0
            raise ValueError(f"pattern has {embeddings} embedding sites, the model has {have}")
        if isinstance(layout, ConvSites):
            return {layout.argument: self._conv_factories(layout)}
        return self._transformer_sites(layout)

    def _conv_factories(self, layout: ConvSites) -> list[Factory | None]:
        if self.pattern is not None:
            from autodropout.regularizers.pattern_conv import conv_site_factories

            return list(conv_site_factories(self.pattern))
        return [self.factory(channels) for channels, _, _ in layout.shapes]

    def _transformer_sites(self, layout: TransformerSites) -> dict[str, Any]:
        kwargs: dict[str, Any] = {layout.embedding_argument: None}
        if self.pattern is not None:
            from autodropout.regularizers.pattern_embedding import embedding_site_factories
            from autodropout.regularizers.pattern_transformer import transformer_site_factories

            kwargs[layout.embedding_argument] = embedding_site_factories(self.pattern) or None
            per_layer = iter(transformer_site_factories(self.pattern))
            for stack in layout.layer_stacks:
                layers = [next(per_layer) for _ in range(stack.layers)]
                if stack.cross_attention:
                    layers = [{**s, **{f"cross_{k}": f for k, f in s.items()
                                       if k in ("query", "key", "value", "attn_output")}} for s in layers]
                kwargs[stack.argument] = layers
            return kwargs
        factory = self.factory()
        for stack in layout.layer_stacks:
            kwargs[stack.argument] = [residual_sites(factory, cross_attention=stack.cross_attention)
                                      for _ in range(stack.layers)] if factory else None
        kwargs[layout.embedding_argument] = factory
        return kwargs
