"""The hand-designed regularizers a study tunes, and the domain each one's parameters are tuned over.

This table is the one place that says what "a regularizer whose rate was simply tuned" means. A
baseline's parameters are drawn uniformly (rates) or from a short list (block sizes) by Ray Tune's
random search, at the same trial budget as one pattern search, and the best on validation is kept.
Ranges cover what the methods' papers use and a little more on each side; every rate starts at 0 so
"off" is inside each family's range (``none`` is also an arm of its own, untuned, since it has
nothing to tune).

| regularizer | tuned | fixed |
|---|---|---|
| dropout (on a Transformer: residual dropout, Vaswani et al. 2017) | p ~ U(0, 0.5) | |
| spatial_dropout | p ~ U(0, 0.5) | |
| dropblock | p ~ U(0, 0.3), block_size in {3, 5, 7} (clipped to the map) | no schedule |
| droppath | p ~ U(0, 0.5) | |
| targetdrop | gamma ~ U(0, 0.5), block_size in {3, 5, 7} | SE reduction 16 |
| ydrop | p ~ U(0, 0.6) (buckets p -/+ min(p, 1 - p) / 2) | no warm-up |
| sparseout | p ~ U(0, 0.5), q ~ U(1, 3) | |
| variational_dropout | p ~ U(0, 0.5) | |

The default baselines of a task follow the activation layout of its sites: ConvNets get none,
dropout, spatial dropout, DropBlock, DropPath, TargetDrop, Y-Drop and Sparseout; Transformers get
none, (residual) dropout, variational dropout, Sparseout and Y-Drop.
"""
from __future__ import annotations

from typing import Any, Sequence

from autodropout.errors import UserInputError
from autodropout.tasks import task_class
from autodropout.transfer import valid_baselines

#: Per regularizer, its tuned parameters as plain data (see :func:`autodropout.workers.tuned.to_tune_domain`).
DOMAINS: dict[str, dict[str, list[Any]]] = {
    "dropout": {"p": ["uniform", 0.0, 0.5]},
    "spatial_dropout": {"p": ["uniform", 0.0, 0.5]},
    "dropblock": {"p": ["uniform", 0.0, 0.3], "block_size": ["choice", [3, 5, 7]]},
    "droppath": {"p": ["uniform", 0.0, 0.5]},
    "targetdrop": {"gamma": ["uniform", 0.0, 0.5], "block_size": ["choice", [3, 5, 7]]},
    "ydrop": {"p": ["uniform", 0.0, 0.6]},
    "sparseout": {"p": ["uniform", 0.0, 0.5], "q": ["uniform", 1.0, 3.0]},
    "variational_dropout": {"p": ["uniform", 0.0, 0.5]},
}
#: The baseline that needs no tuning.
NONE = "none"
#: Default baselines per site kind (activation layout at the task's sites).
DEFAULTS: dict[str, tuple[str, ...]] = {
    "conv": (NONE, "dropout", "spatial_dropout", "dropblock", "droppath", "targetdrop", "ydrop", "sparseout"),
    "seq": (NONE, "dropout", "variational_dropout", "sparseout", "ydrop"),
}


class BaselineError(UserInputError, ValueError):
    """A requested baseline is unknown, not usable on the task, or has no tuned domain."""


def default_baselines(task_kind: str) -> list[str]:
    """The baselines a study of a ``task_kind`` task compares with by default."""
    valid = set(valid_baselines(task_kind))
    return [name for name in DEFAULTS[task_class(task_kind).site_kind] if name in valid]


def tunable_baselines(task_kind: str) -> list[str]:
    """``none`` and every regularizer usable on ``task_kind`` that has a tuned domain."""
    return [n for n in valid_baselines(task_kind) if n == NONE or n in DOMAINS]


def check_baselines(names: Sequence[str], task_kind: str) -> list[str]:
    """``names`` in order if each is ``none`` or a tunable regularizer usable on ``task_kind``."""
    valid = valid_baselines(task_kind)
    tunable = tunable_baselines(task_kind)
    seen: list[str] = []
    for name in names:
        if name not in valid:
            raise BaselineError(f"baseline {name!r} is not usable on a {task_kind} task; choose among: "
                                f"{', '.join(tunable)}")
        if name not in tunable:
            raise BaselineError(f"baseline {name!r} has no tuned domain in autodropout.study.baselines; choose "
                                f"among: {', '.join(tunable)}")
        if name in seen:
            raise BaselineError(f"baseline {name!r} is listed twice")
        seen.append(name)
    if not seen:
        raise BaselineError("--baselines: give at least one baseline (e.g. none,dropout)")
    return seen


def describe_domain(name: str) -> str:
    """``p ~ U(0, 0.3), block_size in {3, 5, 7}``; ``-`` for ``none``."""
    parts = []
    for key, (kind, *args) in DOMAINS.get(name, {}).items():
        parts.append(f"{key} ~ U({args[0]:g}, {args[1]:g})" if kind == "uniform"
                     else f"{key} in {{{', '.join(map(str, args[0]))}}}")
    return ", ".join(parts) or "-"
