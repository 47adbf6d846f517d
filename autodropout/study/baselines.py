"""The hand-designed regularizers a study tunes, and the domain each one's parameters are tuned over.

This table is the one place that says what "a regularizer whose rate was simply tuned" means. A
baseline's parameters are tuned at the same trial budget as one pattern search by
:class:`autodropout.tune.tuned.LatticeSearcher` (a lattice over the domain, then a finer one
around its best; docs/study.md measures how close to the best rate it gets) and the best on
validation is kept. Every range starts at 0 so "off" is inside each family's range (``none`` is also
an arm of its own, untuned, since it has nothing to tune), and every rate stays below 1.

| regularizer | on a ConvNet | on a Transformer | fixed |
|---|---|---|---|
| dropout (on a Transformer: residual dropout, Vaswani et al. 2017) | p ~ U(0, 0.7) | p ~ U(0, 0.5) | |
| spatial_dropout | p ~ U(0, 0.7) | p ~ U(0, 0.5) | |
| dropblock | p ~ U(0, 0.3), block_size in {3, 5, 7} (clipped to the map) | - | no schedule |
| droppath | p ~ U(0, 0.7) | p ~ U(0, 0.5) | |
| targetdrop | gamma ~ U(0, 0.7), block_size in {3, 5, 7} | - | SE reduction 16 |
| ydrop | p ~ U(0, 0.8) (buckets p -/+ min(p, 1 - p) / 2) | p ~ U(0, 0.6) | no warm-up |
| sparseout | p ~ U(0, 0.7), q ~ U(1, 4) | p ~ U(0, 0.5), q ~ U(1, 3) | |
| variational_dropout | p ~ U(0, 0.7) | p ~ U(0, 0.5) | |
| concrete_dropout | - (one trial) | - (one trial) | its defaults: init_p 0.1, the reference code's \
dropout_regularizer 1e-5 |

Concrete Dropout (Gal, Hron & Kendall 2017) is what a user runs instead of tuning: it learns a rate per
site by gradient in its one training run, so its "tuning" is that one trial, and it is the first point
of a study's budget curve (:mod:`autodropout.study.curves`).

Why the ConvNet ranges are wider (2026-12-01): the digits study (docs/results.md) tuned every rate
family to the top of its old range, U(0, 0.5) (dropout 0.468, spatial dropout 0.456, TargetDrop
0.468, Sparseout 0.499 with q = 2.96 of U(1, 3); Y-Drop 0.514 of U(0, 0.6)), and on
digits_wrn_quick with training seed 0 validation accuracy keeps rising past those edges: dropout
0.834 at p = 0.5, 0.889 at 0.6, 0.915 at 0.7, 0.880 at 0.8, 0.451 at 0.9; Y-Drop 0.919 at 0.6,
0.864 at 0.75; Sparseout p = 0.5 0.872 at q = 3, 0.880 at q = 4 (``autodropout train
digits_wrn_quick --regularizer NAME --param p=P [--param q=Q] --seed 0``; one run each, the seed
spread is 0.0085). The mask baselines stop at 0.7, the highest rate of the conv pattern space, so
that a search can still match each of them (tests/tasks/test_baseline_pattern.py); that is where
dropout peaked, so its range ends at its measured best. Y-Drop, not a mask, gets room past its
measured peak. DropBlock's tuned rate (0.163 of U(0, 0.3)) was not at an edge. The Transformer
ranges are unchanged: the language-model and translation studies' tuned rates (0.135-0.162) sit
well inside them, and lm_transformer_quick's validation perplexity at p = 0.5 (170) is far worse
than near its best, p ~ 0.18 (149).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autodropout.commands.transfer import valid_baselines
from autodropout.core.errors import UserInputError
from autodropout.tasks import task_class

#: Per regularizer, its tuned parameters as plain data (see :mod:`autodropout.tune.lattice`): the
#: ranges on a Transformer (any task whose sites are not a ConvNet's).
DOMAINS: dict[str, dict[str, list[Any]]] = {
    "dropout": {"p": ["uniform", 0.0, 0.5]},
    "spatial_dropout": {"p": ["uniform", 0.0, 0.5]},
    "dropblock": {"p": ["uniform", 0.0, 0.3], "block_size": ["choice", [3, 5, 7]]},
    "droppath": {"p": ["uniform", 0.0, 0.5]},
    "targetdrop": {"gamma": ["uniform", 0.0, 0.7], "block_size": ["choice", [3, 5, 7]]},
    "ydrop": {"p": ["uniform", 0.0, 0.6]},
    "sparseout": {"p": ["uniform", 0.0, 0.5], "q": ["uniform", 1.0, 3.0]},
    "variational_dropout": {"p": ["uniform", 0.0, 0.5]},
    "concrete_dropout": {},  # nothing to tune: one trial (the table above)
}
#: The same on a ConvNet, where heavy dropping pays (see the table above for why).
CONV_DOMAINS: dict[str, dict[str, list[Any]]] = {
    **DOMAINS,
    "dropout": {"p": ["uniform", 0.0, 0.7]},
    "spatial_dropout": {"p": ["uniform", 0.0, 0.7]},
    "droppath": {"p": ["uniform", 0.0, 0.7]},
    "ydrop": {"p": ["uniform", 0.0, 0.8]},
    "sparseout": {"p": ["uniform", 0.0, 0.7], "q": ["uniform", 1.0, 4.0]},
    "variational_dropout": {"p": ["uniform", 0.0, 0.7]},
}
#: The baseline that needs no tuning.
NONE = "none"
#: Default baselines per site kind (activation layout at the task's sites).
DEFAULTS: dict[str, tuple[str, ...]] = {
    "conv": (NONE, "dropout", "spatial_dropout", "dropblock", "droppath", "targetdrop", "ydrop", "sparseout",
             "concrete_dropout"),
    "seq": (NONE, "dropout", "variational_dropout", "sparseout", "ydrop", "concrete_dropout"),
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


def tuning_domain(name: str, task_kind: str) -> dict[str, list[Any]]:
    """The domain ``name`` (a tunable regularizer) is tuned over on a ``task_kind`` task."""
    return (CONV_DOMAINS if task_class(task_kind).site_kind == "conv" else DOMAINS)[name]


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


def describe_domain(domain: Mapping[str, Sequence[Any]]) -> str:
    """``p ~ U(0, 0.3), block_size in {3, 5, 7}`` for a domain of :data:`DOMAINS`; ``-`` for none (``{}``)."""
    parts = []
    for key, (kind, *args) in domain.items():
        parts.append(f"{key} ~ U({args[0]:g}, {args[1]:g})" if kind == "uniform"
                     else f"{key} in {{{', '.join(map(str, args[0]))}}}")
    return ", ".join(parts) or "-"
