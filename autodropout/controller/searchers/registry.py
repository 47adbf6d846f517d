"""Name -> searcher registry: every searcher ``search.controller`` can name, with its typed settings.

A searcher is one file of this package, named after it (``evolution.py`` registers ``evolution``), that
calls :func:`register` on import with a :class:`SearcherInfo`. The files are found by name without
being imported (:func:`available` lists them), and a file is imported the first time its searcher is
looked up (:func:`info`). That keeps loading an experiment cheap: the default ``lstm`` and ``random``
entries name their Ray-side classes by a ``"module:Class"`` path, so checking ``search.controller:
lstm`` imports neither Ray nor the policy; a searcher whose class lives in its own file (evolution)
costs Ray's import only where it is used.

Settings are one frozen dataclass per searcher, owned by the searcher's file; their ``__post_init__``
checks the values (:class:`~autodropout.core.errors.ConfigError` naming the field), and
:func:`parse_settings` reads them from the experiment file with the errors naming the key path
(``search.searchers.evolution.population``).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodropout.core.config import from_dict
from autodropout.core.errors import ConfigError, UnknownNameError
from autodropout.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - the Ray side, for type checkers only
    from autodropout.controller.searcher import BaseSearcher
    from autodropout.search_spaces import SearchSpace

__all__ = ["SearcherInfo", "available", "build", "info", "parse_settings", "register", "unregister"]

#: Modules of this package that are not searchers.
_NOT_SEARCHERS = {"registry"}


@dataclass(frozen=True)
class SearcherInfo:
    """What the registry knows about one searcher.

    Attributes:
        name: the name ``search.controller`` and ``--controller`` take (and a study's arm), e.g. ``"evolution"``.
        searcher: the :class:`~autodropout.controller.searcher.BaseSearcher` subclass, or its
            ``"module:Class"`` path (imported when a search is built, so that config checks need no Ray).
            It is called as ``searcher(space, config=settings, **options)``, without ``config`` when the
            searcher has no settings; ``options`` are ``BaseSearcher``'s keywords.
        summary: what it is, in a few words, for ``--help`` and the study report ("random search").
        reference: the paper it implements (``Authors, venue year``), or ``""``.
        settings: its frozen settings dataclass (every field with a default), or ``None`` if it takes none.
    """

    name: str
    searcher: type | str
    summary: str
    reference: str = ""
    settings: type | None = None

    def searcher_class(self) -> type:
        """The searcher class (a ``"module:Class"`` path imported now)."""
        if not isinstance(self.searcher, str):
            return self.searcher
        module, _, attribute = self.searcher.partition(":")
        return getattr(importlib.import_module(module), attribute)


_REGISTRY: Registry[SearcherInfo] = Registry("searcher")


def register(entry: SearcherInfo) -> SearcherInfo:
    """Add a searcher (a second entry of the same name is an error)."""
    return _REGISTRY.register(entry.name, entry)


def unregister(name: str) -> None:
    """Remove a searcher registered at run time (a test's own); files of this package come back on lookup."""
    _REGISTRY.unregister(name)


def _files() -> list[str]:
    """The searchers' file names in this package (found without importing them)."""
    return [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
            if not m.name.startswith("_") and m.name not in _NOT_SEARCHERS]


def available() -> list[str]:
    """Sorted names of every searcher: this package's files and any registered at run time."""
    return sorted(set(_REGISTRY.names()) | set(_files()))


def info(name: str) -> SearcherInfo:
    """The entry of ``name``, importing its file on first use; an unknown name raises
    :class:`~autodropout.core.errors.UnknownNameError` listing the valid ones."""
    if name not in _REGISTRY and isinstance(name, str) and name in _files():
        importlib.import_module(f"{__package__}.{name}")
        if name not in _REGISTRY:  # a programming error of the file, not of the user's config
            raise RuntimeError(f"{__package__}.{name} registers no searcher named {name!r}")
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown searcher {name!r}; valid names: {', '.join(available())}")
    return _REGISTRY.get(name)


def parse_settings(name: str, values: Mapping[str, Any], path: str) -> Any:
    """The settings of searcher ``name`` from a mapping as the experiment file spells it (missing keys
    take their defaults), or ``None`` for a searcher without settings. Unknown keys, wrong types and
    bad values are a :class:`ConfigError` naming ``path.key``."""
    entry = info(name)
    if entry.settings is None:
        if values:
            raise ConfigError(f"{path}: the {name} searcher takes no settings, got {', '.join(sorted(values))}")
        return None
    return from_dict(entry.settings, values, path)


def build(name: str, space: SearchSpace, settings: Any = None, **options: Any) -> BaseSearcher:
    """A new searcher ``name`` over ``space`` with ``settings`` (its dataclass; ``None``: the defaults)
    and ``BaseSearcher``'s keyword ``options`` (metric, mode, seed, start_tokens, epochs, ...)."""
    entry = info(name)
    if entry.settings is None:
        return entry.searcher_class()(space, **options)
    if settings is not None and not isinstance(settings, entry.settings):
        raise TypeError(f"searcher {name!r} takes {entry.settings.__name__} settings, got {type(settings).__name__}")
    return entry.searcher_class()(space, config=settings if settings is not None else entry.settings(), **options)
