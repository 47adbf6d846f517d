"""The searchers a search can run (``search.controller``, ``--controller``, a study's arms), by name.

Each searcher is one file of this package, named after it, that registers itself with
:func:`register` (:mod:`.registry`); adding a searcher is adding a file (docs/search.md, "Adding a
searcher"). The files are imported on first lookup, not here, so that checking an experiment's
``search`` section imports only the searcher it names.

>>> from autodropout.controller import searchers
>>> searchers.available()
['evolution', 'lstm', 'random']
"""
from autodropout.controller.searchers.registry import (
                                                       SearcherInfo,
                                                       available,
                                                       build,
                                                       info,
                                                       parse_settings,
                                                       register,
                                                       unregister,
)

__all__ = ["SearcherInfo", "available", "build", "info", "parse_settings", "register", "unregister"]
