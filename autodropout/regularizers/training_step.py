"""What a training loop calls once before each training forward, for regularizers that need it.

Two protocols: modules with ``set_progress(progress)`` (e.g. DropBlock's linear schedule) receive the
fraction of training done, and :class:`~autodropout.regularizers.ydrop.YDrop` sites receive fresh
conductance scores (Georgiou et al., arXiv 2409.09088: recomputed every batch in the reference)::

    for step, (x, y) in enumerate(loader):
        prepare_step(model, x, y, progress=step / total_steps)
        loss = F.cross_entropy(model(x), y)
        ...

Which modules are interested is found by one scan of ``model`` on its first call and cached per
model (weakly, so a dropped model frees its entry); a model without such modules costs a dictionary
lookup per step. Modules added to a model after its first call are not seen.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Sequence

from torch import Tensor, nn

from autodropout.regularizers._conductance import ConductanceEstimator, TargetFn
from autodropout.regularizers.ydrop import YDrop


@dataclass
class _Plan:
    progress_modules: list[nn.Module] = field(default_factory=list)
    ydrop_modules: list[YDrop] = field(default_factory=list)
    calls: int = 0


_PLANS: weakref.WeakKeyDictionary[nn.Module, _Plan] = weakref.WeakKeyDictionary()


def _plan(model: nn.Module) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        plan = _Plan(
            progress_modules=[m for m in model.modules() if callable(getattr(m, "set_progress", None))],
            ydrop_modules=[m for m in model.modules() if isinstance(m, YDrop)],
        )
        _PLANS[model] = plan
    return plan


def prepare_step(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    targets: Tensor,
    progress: float,
    *,
    update_every: int = 1,
    n_steps: int = 5,
    subsample: float = 0.1875,
    target_fn: TargetFn | None = None,
    input_module: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Prepare ``model``'s regularizers for the training forward on ``(inputs, targets)``.

    Calls ``set_progress(progress)`` on every submodule that has it. If the model has YDrop sites in
    training mode past their warm-up, runs a :class:`ConductanceEstimator` (``n_steps``,
    ``subsample``, ``target_fn``, ``input_module`` as documented there) on this batch every
    ``update_every`` calls, and on any call where such a site has no scores yet.

    Args:
        model: the network being trained.
        inputs: the batch, as passed to ``model`` (a tensor, or a sequence for ``model(*inputs)``).
        targets: labels ``(B,)`` or token targets ``(B, T)``.
        progress: fraction of training done, in [0, 1].
        update_every: estimator period in calls (1 = every step, as the reference).

    Returns:
        ``{site name: scores (N,)}`` when the estimator ran on this call, else ``{}``.
    """
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
        raise ValueError(f"prepare_step: progress must be a number in [0, 1], got {progress!r}")
    if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
        raise ValueError(f"prepare_step: update_every must be an int >= 1, got {update_every!r}")
    plan = _plan(model)
    for module in plan.progress_modules:
        module.set_progress(float(progress))
    due = plan.calls % update_every == 0
    plan.calls += 1
    active = [m for m in plan.ydrop_modules if m.training and m.needs_scores]
    if not active or not (due or any(m.scores is None for m in active)):
        return {}
    estimator = ConductanceEstimator(
        model, plan.ydrop_modules, n_steps=n_steps, subsample=subsample,
        target_fn=target_fn, input_module=input_module,
    )
    return estimator.update(inputs, targets)
