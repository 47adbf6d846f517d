"""The one serialized form of a search space, and a pattern's JSON sites read against it.

A space is two keys of the JSON document that carries it, ``{"space": kind, "space_config":
{"num_sites": L, "values": {...}, "num_embeddings": E, "embedding_values": {...}}}``: a pattern file,
a run folder's ``run.json``, the searcher's saved state and a trial's config all hold it so
(:func:`space_to_json`, :func:`space_from_json`). ``space_config`` is :meth:`SearchSpace.config`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autodropout.core.errors import PatternError
from autodropout.search_spaces.conv import ConvSpace
from autodropout.search_spaces.space import Pattern, SearchSpace
from autodropout.search_spaces.transformer import TransformerSpace

SPACES: dict[str, type[SearchSpace]] = {"conv": ConvSpace, "transformer": TransformerSpace}


def space_to_json(space: SearchSpace) -> dict[str, Any]:
    """``{"space": kind, "space_config": config}``, to merge into the document that carries it."""
    return {"space": space.kind, "space_config": space.config()}


def space_from_json(document: Mapping[str, Any]) -> SearchSpace:
    """The space of a document's ``space`` and ``space_config`` (inverse of :func:`space_to_json`)."""
    kind, config = document.get("space"), document.get("space_config")
    if not isinstance(kind, str) or kind not in SPACES:
        raise PatternError(f"field 'space': {kind!r} is not one of {sorted(SPACES)}")
    if not isinstance(config, Mapping):
        raise PatternError("field 'space_config': expected an object")
    return SPACES[kind].from_config(config)


def pattern_from_json(space: SearchSpace, layers: Any, embeddings: Any = (), where: str = "") -> Pattern:
    """The :class:`Pattern` of ``space`` whose sites are the JSON objects ``layers`` and ``embeddings``
    (:meth:`Pattern.to_json`, :meth:`Pattern.embeddings_to_json`): the counts, then every site read and
    checked once, with errors naming ``where``, the site and the field."""
    parsed_embeddings = _sites(embeddings, "embeddings", space.num_embeddings, where,
                               lambda fields, at: space.embedding_from_json(fields, where=f"{where}embedding {at}: "))
    parsed_layers = _sites(layers, "layers", space.num_sites, where,
                           lambda fields, at: space.layer_from_json(fields, where=f"{where}site {at}: "))
    return Pattern(space.kind, parsed_layers, parsed_embeddings)


def _sites(sites: Any, field_name: str, count: int, where: str,
           parse: Callable[[Mapping[str, Any], int], Any]) -> tuple[Any, ...]:
    """A list of ``count`` site objects (``field_name`` of a pattern), each parsed by ``parse``."""
    label = "site" if field_name == "layers" else "embedding"
    if not isinstance(sites, (list, tuple)):
        raise PatternError(f"{where}field {field_name!r}: expected a list, got {type(sites).__name__}")
    if len(sites) != count:
        counted = "space_config.num_sites" if field_name == "layers" else "space_config.num_embeddings"
        raise PatternError(f"{where}has {len(sites)} {label}s but {counted} is {count}")
    parsed = []
    for at, fields in enumerate(sites):
        if not isinstance(fields, dict):
            raise PatternError(f"{where}{label} {at}: expected an object, got {type(fields).__name__}")
        parsed.append(parse(fields, at))
    return tuple(parsed)
