"""Type predicates shared by every validator of the project, and the one coercion of a metric to what
JSON can hold (standard library only).

JSON, YAML and Python all let ``True`` pass as ``1``; a count or a rate given as a bool is a mistake,
so these predicates reject bools. Callers raise their own error (``ValueError`` in library code,
:class:`~autodropout.core.errors.ConfigError` for configs) with a message naming the field.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any


def is_int(value: object, minimum: int | None = None, maximum: int | None = None) -> bool:
    """``value`` is an integer (``int`` or a NumPy integer, not a ``bool``) within ``[minimum, maximum]``
    (open ends when ``None``)."""
    return (
        isinstance(value, Integral)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    )


def is_real(value: object, low: float | None = None, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False) -> bool:
    """``value`` is a finite real number (not a ``bool``) within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or not (value >= high if high_open else value > high)


def first_missing_and_unknown(given: Iterable[str], expected: Sequence[str]) -> tuple[str | None, str | None]:
    """The first name of ``expected`` absent from ``given`` and the first (sorted) name of ``given`` not
    expected, ``None`` for either when there is none: what a strict reader of a mapping reports."""
    given = set(given)
    missing = next((name for name in expected if name not in given), None)
    return missing, min(given - set(expected), default=None)


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else ``None``: how every writer
    stores a metric, since JSON has no NaN or infinity (a diverged run's metric is written as null)."""
    return float(value) if is_real(value) else None


def finite_json(value: Any) -> Any:
    """A JSON value with every non-finite float in it (at any depth) replaced by ``None``."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_json(v) for v in value]
    return value
