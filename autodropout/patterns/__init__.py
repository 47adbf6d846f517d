"""Learned patterns that ship with the package, loaded by name (as timm loads pretrained weights).

Each shipped pattern is an ordinary pattern file, ``autodropout/patterns/<name>.json``, whose
``source.study`` records where it comes from: the study, its search and evaluation seeds, and its
test result with paired differences against the baselines (:mod:`autodropout.search_spaces.pattern_json`).
The folder itself is the listing: no separate index that could disagree with the files. A file gets
there only through ``autodropout study --publish STUDY_DIR NAME`` (a measured study's best pattern);
nothing is shipped that was not measured.

Everywhere a pattern file is accepted (``ad.load_patterns``, ``autodropout show``, ``transfer``,
``train --pattern``), a shipped pattern's name works too::

    ad.load_patterns("digits-wrn-lstm")        # a shipped pattern
    ad.load_patterns("runs/X/best_patterns.json")

A path that exists, ends in ``.json`` or has a folder part is always a path. The environment variable
``AUTODROPOUT_PATTERNS`` points the lookup (and publishing) at another folder: tests use a temporary
one; a team can keep its own collection.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from autodropout.core.errors import UnknownNameError
from autodropout.search_spaces import PatternFormatError, PatternSet
from autodropout.search_spaces import load_patterns as load_pattern_file

ENV = "AUTODROPOUT_PATTERNS"
#: A shipped pattern's name: lower-case letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit.
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class PatternNameError(UnknownNameError):
    """No pattern file at that path and no shipped pattern of that name; the message lists the names."""


def patterns_dir() -> Path:
    """The folder of shipped patterns: ``$AUTODROPOUT_PATTERNS`` when set, else this package's folder."""
    override = os.environ.get(ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def shipped() -> list[str]:
    """Sorted names of the shipped patterns."""
    folder = patterns_dir()
    return sorted(p.stem for p in folder.glob("*.json") if NAME.fullmatch(p.stem)) if folder.is_dir() else []


def check_name(name: str) -> str:
    """``name`` if it can name a shipped pattern (see :data:`NAME`), else a ``UserInputError``."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name.endswith(".json"):
        raise PatternFormatError(f"pattern name {name!r}: use lower-case letters, digits, '-', '_' and '.' "
                                 "(at most 64, starting with a letter or digit, no .json)")
    return name


def is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` means a file rather than a shipped pattern's name."""
    path = Path(name_or_path)
    return path.exists() or path.suffix.lower() == ".json" or len(path.parts) != 1 or not NAME.fullmatch(str(path))


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The pattern file meant by ``name_or_path``: the path itself, or the shipped pattern of that name."""
    if is_path(name_or_path):
        return Path(name_or_path)
    candidate = patterns_dir() / f"{name_or_path}.json"
    if candidate.is_file():
        return candidate
    names = shipped()
    listing = f"shipped patterns: {', '.join(names)}" if names else \
        "no patterns are shipped yet (autodropout study --publish STUDY_DIR NAME adds one)"
    raise PatternNameError(f"{name_or_path}: no such pattern file, and no shipped pattern of that name; {listing}")


def load_patterns(name_or_path: str | os.PathLike) -> PatternSet:
    """Read a pattern file, or a shipped pattern by name (strict validation, as
    :func:`autodropout.search_spaces.load_patterns`)."""
    return load_pattern_file(resolve(name_or_path))


__all__ = ["ENV", "NAME", "PatternNameError", "check_name", "is_path", "load_patterns", "patterns_dir", "resolve",
           "shipped"]
