"""A name -> object registry (fairseq's and timm's registries): regularizers, tasks and presets
register themselves under a name, and an unknown name is an error that lists the valid ones."""
from __future__ import annotations

from typing import Generic, TypeVar

from autodropout.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name; ``what`` names the kind of entry in error messages (``"regularizer"``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's own entry, say); an unknown name is left alone."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Sorted names of every entry."""
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name raises :class:`UnknownNameError` listing the valid ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(f"unknown {self.what} {name!r}; valid names: {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries
