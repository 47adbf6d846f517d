"""What a training loop calls around each training forward, for regularizers that need more than
their input. The loop knows no method by name; a regularizer module opts in with any of:

* ``set_progress(progress)``: receives the fraction of training done (DropBlock's linear schedule);
* a classmethod ``before_step(modules, step)``: called once per step with every module of its class
  in the model and a :class:`TrainingStep` (the model, the batch, the progress, the options), for
  methods that need the batch or all their sites at once (Y-Drop: one conductance pass, Georgiou et
  al., arXiv 2409.09088, recomputed every batch in the reference). It returns a dict to merge into
  :func:`prepare_step`'s result, or ``None``;
* ``regularization_loss() -> Tensor``: a penalty of the module's own parameters that belongs in the
  training objective (Concrete Dropout's dropout-rate term, Gal et al., NeurIPS 2017);
  :func:`auxiliary_loss` sums it over the model after the forward.

::

    for step, (x, y) in enumerate(loader):
        prepare_step(model, x, y, progress=step / total_steps)
        loss = F.cross_entropy(model(x), y) + auxiliary_loss(model)
        ...

Interested modules are found by one scan of ``model`` on its first call and cached per model
(weakly, so a dropped model frees its entry); a model without such modules costs a dictionary
lookup per step. Modules added to a model after its first call are not seen.
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from autodropout.core.checks import is_int, is_real


@dataclass(frozen=True)
class TrainingStep:
    """One training step as ``before_step`` hooks see it.

    Attributes:
        model: the network being trained.
        inputs: the batch, as passed to ``model`` (a tensor, or a sequence for ``model(*inputs)``).
        targets: labels ``(B,)`` or token targets ``(B, T)``.
        progress: fraction of training done, in [0, 1].
        due: whether periodic work is due on this call (every ``update_every`` calls).
        options: the other keyword arguments of :func:`prepare_step`, for hooks that take them.
    """

    model: nn.Module
    inputs: Tensor | Sequence[Tensor]
    targets: Tensor
    progress: float
    due: bool
    options: Mapping[str, Any]


@dataclass
class _Plan:
    progress_modules: list[nn.Module] = field(default_factory=list)
    hooks: dict[type, list[nn.Module]] = field(default_factory=dict)
    loss_modules: list[nn.Module] = field(default_factory=list)
    calls: int = 0


_PLANS: weakref.WeakKeyDictionary[nn.Module, _Plan] = weakref.WeakKeyDictionary()


def _plan(model: nn.Module) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        plan = _Plan(progress_modules=[m for m in model.modules() if callable(getattr(m, "set_progress", None))],
                     loss_modules=[m for m in model.modules() if callable(getattr(m, "regularization_loss", None))])
        for module in model.modules():
            if callable(getattr(type(module), "before_step", None)):
                plan.hooks.setdefault(type(module), []).append(module)
        _PLANS[model] = plan
    return plan


def prepare_step(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    targets: Tensor,
    progress: float,
    *,
    update_every: int = 1,
    **options: Any,
) -> dict[str, Tensor]:
    """Prepare ``model``'s regularizers for the training forward on ``(inputs, targets)``.

    Calls ``set_progress(progress)`` on every submodule that has it, then every ``before_step``
    hook (see the module docstring).

    Args:
        model: the network being trained.
        inputs: the batch, as passed to ``model``.
        targets: labels ``(B,)`` or token targets ``(B, T)``.
        progress: fraction of training done, in [0, 1].
        update_every: period, in calls, of the hooks' periodic work (1 = every step, as the
            Y-Drop reference).
        options: passed to the hooks (Y-Drop takes ``n_steps``, ``subsample``, ``target_fn`` and
            ``input_module``, see :class:`~autodropout.regularizers._conductance.ConductanceEstimator`).

    Returns:
        What the hooks computed on this call (Y-Drop: ``{site name: scores (N,)}``), else ``{}``.
    """
    if not is_real(progress, 0.0, 1.0):
        raise ValueError(f"prepare_step: progress must be a number in [0, 1], got {progress!r}")
    if not is_int(update_every, 1):
        raise ValueError(f"prepare_step: update_every must be an int >= 1, got {update_every!r}")
    plan = _plan(model)
    for module in plan.progress_modules:
        module.set_progress(float(progress))
    step = TrainingStep(model, inputs, targets, float(progress), plan.calls % update_every == 0, options)
    plan.calls += 1
    results: dict[str, Tensor] = {}
    for cls, modules in plan.hooks.items():
        results.update(cls.before_step(modules, step) or {})
    return results


def auxiliary_loss(model: nn.Module) -> Tensor | float:
    """The sum of ``regularization_loss()`` over every submodule of ``model`` that has one, to add to
    the training loss after the forward (the modules read what they need from it, e.g. Concrete
    Dropout's feature count); ``0.0`` for a model without such modules, so that adding it leaves a
    loss and its gradients bit for bit as they were.

    Returns:
        A 0-dim tensor (on the modules' device), or ``0.0``.
    """
    modules = _plan(model).loss_modules
    if not modules:
        return 0.0
    return sum((module.regularization_loss() for module in modules[1:]), modules[0].regularization_loss())
