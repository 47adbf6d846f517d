"""Errors in what the user gave: the bottom of the package, imported by every layer.

The command line turns exactly these into one line ``autodropout: error: ...`` and exit status 2;
any other exception is a bug and keeps its traceback. Each also derives from the built-in error a
Python caller would expect (``ValueError`` for a bad value, ``KeyError`` for an unknown name).
"""
from __future__ import annotations


class UserInputError(Exception):
    """Base of errors in what the user gave (files, keys, values, names, addresses, folders)."""


class ConfigError(UserInputError, ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


class PatternError(UserInputError, ValueError):
    """A pattern does not fit its search space; the message names the site and the field."""


class DataError(UserInputError, ValueError):
    """A dataset file is missing, unreadable or malformed; the message names the file."""


class UnknownNameError(UserInputError, KeyError):
    """A name (regularizer, task, pattern rank, preset) that does not exist; the message lists the valid ones."""

    def __str__(self) -> str:
        # KeyError's own __str__ quotes its argument (it expects a key, not a sentence).
        return str(self.args[0]) if self.args else ""


class MissingDataError(DataError, FileNotFoundError):
    """A dataset file or folder does not exist; the message names it and what was expected there."""
