"""Dropout-family regularizers: a pure function plus a thin ``nn.Module`` per method, and a registry.

One method per file; each file registers itself with :func:`register` on import, and every file of
this package is imported here, so adding a method is adding a file.

>>> import autodropout as ad
>>> ad.regularizers.create("dropblock", p=0.1, block_size=5)
"""
import importlib
import pkgutil

from autodropout.regularizers.registry import RegularizerInfo, available, create, info, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["RegularizerInfo", "available", "create", "info", "register"]
