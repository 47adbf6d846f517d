"""Layer conductance of every Y-Drop site in one batched forward and one backward.

Conductance (Dhamdhere et al., "How important is a neuron?", ICLR 2019) is integrated gradients
taken through a hidden unit; Y-Drop (Georgiou et al., arXiv 2409.09088) ranks units by it. For a
site with activation ``y``, the attributed output ``F``, baseline ``x' = 0`` and ``m = n_steps``,
captum's ``LayerConductance`` with ``method="riemann_trapezoid"`` computes, per sample,

    Y_k(x) = sum_{i=1..m} dF/dy_k(x_{i-1}) * (y_k(x_i) - y_k(x_{i-1})),   x_i = (i / m) x,

the gradient taken at the left end of each step; summed over the units of a layer that every path
crosses, it approximates ``F(x) - F(0)`` (completeness). captum attributes one layer per call;
:class:`ConductanceEstimator` stacks the ``m + 1`` interpolated inputs into one batch, captures every
site's activation with forward hooks, and takes one backward for all sites at once.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autodropout.core.checks import is_int
from autodropout.regularizers.ydrop import YDrop, feature_dim

TargetFn = Callable[[Any, Tensor], Tensor]


def true_label_logit(logits: Tensor, targets: Tensor) -> Tensor:
    """The attributed output ``F`` per row: the logit of the true label.

    Classification: logits ``(R, K)``, targets ``(R,)`` -> ``logits[r, targets[r]]``. Sequences:
    logits ``(R, T, K)``, targets ``(R, T)`` -> the true-token logits summed over ``T`` (one scalar
    per sequence, so that a unit's score reflects the whole sequence). Negative targets (e.g.
    ``cross_entropy``'s ``ignore_index = -100`` on padding) contribute nothing. Returns ``(R,)``.
    """
    if not isinstance(logits, Tensor) or logits.ndim != targets.ndim + 1 or logits.ndim not in (2, 3):
        raise ValueError(
            "true_label_logit: expected logits (R, K) with targets (R,) or logits (R, T, K) with "
            f"targets (R, T), got logits {getattr(logits, 'shape', type(logits).__name__)} and "
            f"targets {tuple(targets.shape)}; pass target_fn for other model outputs"
        )
    valid = targets >= 0
    picked = logits.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    picked = torch.where(valid, picked, torch.zeros((), dtype=picked.dtype, device=picked.device))
    return picked.flatten(1).sum(1) if picked.ndim > 1 else picked


class ConductanceEstimator:
    """Fills the conductance scores of a model's :class:`YDrop` sites.

    Args:
        model: the network; called as ``model(*inputs)``.
        modules: the YDrop sites to score (default: every YDrop submodule of ``model``). A site's
            activation is the module's output, i.e. the pre-dropout activation because the pass runs
            in eval mode; as in captum, gradients are taken with respect to that output tensor.
        n_steps: ``m``, the number of interpolation steps (reference: 5).
        subsample: fraction of the batch that :meth:`update` scores, ``max(1, int(B * subsample))``
            rows drawn without replacement (reference: 0.1875, 12 of 64).
        target_fn: ``target_fn(model_output, targets) -> (R,)``, the output ``F`` to attribute;
            default :func:`true_label_logit`.
        input_module: where interpolation happens. ``None``: the model's floating-point inputs are
            scaled (baseline 0). Token ids cannot be interpolated, so for language models pass the
            embedding: the inputs are repeated unchanged and every output of ``input_module`` is
            scaled instead (the baseline is then a zero embedding; anything added after it, e.g.
            positional encodings, is not interpolated).

    The pass runs in eval mode (dropout off, BatchNorm on running statistics) and restores every
    submodule's train/eval flag afterwards; it leaves parameter ``.grad`` untouched.
    """

    def __init__(
        self,
        model: nn.Module,
        modules: Sequence[YDrop] | None = None,
        n_steps: int = 5,
        subsample: float = 0.1875,
        target_fn: TargetFn | None = None,
        input_module: nn.Module | None = None,
    ) -> None:
        if not is_int(n_steps, 1):
            raise ValueError(f"ConductanceEstimator: n_steps must be an int >= 1, got {n_steps!r}")
        if not isinstance(subsample, (int, float)) or not 0.0 < subsample <= 1.0:
            raise ValueError(f"ConductanceEstimator: subsample must be in (0, 1], got {subsample!r}")
        if target_fn is not None and not callable(target_fn):
            raise TypeError("ConductanceEstimator: target_fn must be callable")
        if input_module is not None and not isinstance(input_module, nn.Module):
            raise TypeError("ConductanceEstimator: input_module must be an nn.Module")
        names = {id(module): name for name, module in model.named_modules()}
        if modules is None:
            modules = [module for module in model.modules() if isinstance(module, YDrop)]
            if not modules:
                raise ValueError("ConductanceEstimator: model has no YDrop modules to score")
        for i, module in enumerate(modules):
            if not isinstance(module, YDrop):
                raise TypeError(f"ConductanceEstimator: modules[{i}] is a "
                                f"{type(module).__name__}, expected YDrop")
            if id(module) not in names:
                raise ValueError(f"ConductanceEstimator: modules[{i}] is not a submodule of model")
        self.model = model
        self.modules = list(modules)
        self.names = [names[id(module)] for module in self.modules]
        self.n_steps = n_steps
        self.subsample = float(subsample)
        self.target_fn: TargetFn = true_label_logit if target_fn is None else target_fn
        self.input_module = input_module

    def conductance(self, inputs: Tensor | Sequence[Tensor], targets: Tensor) -> dict[str, Tensor]:
        """Per-sample conductance of each site: ``{name: (B, *site_shape)}`` for ``B`` rows."""
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        rows = _batch_size(inputs, targets)
        path = _Path(self.n_steps, rows, inputs[0].device)
        if self.input_module is None:
            for i, tensor in enumerate(inputs):
                if not tensor.is_floating_point():
                    raise TypeError(
                        f"ConductanceEstimator: inputs[{i}] is {tensor.dtype} (token ids?) and cannot "
                        "be interpolated; pass input_module= (e.g. the embedding) to interpolate its "
                        "output instead"
                    )
            # Leaves that require grad, so every site depends on them even in a frozen model.
            stacked = tuple(path.scaled(path.repeat(t)).detach().requires_grad_() for t in inputs)
        else:
            stacked = tuple(path.repeat(t) for t in inputs)
        activations, grads = self._activations_and_gradients(path, stacked, path.repeat(targets))
        result = {}
        for name, y, g in zip(self.names, activations, grads):
            y = y.detach().unflatten(0, (path.steps + 1, rows))
            g = torch.zeros_like(y) if g is None else g.unflatten(0, (path.steps + 1, rows))
            result[name] = (g[:-1] * (y[1:] - y[:-1])).sum(0)
        return result

    def _activations_and_gradients(self, path: _Path, stacked: tuple[Tensor, ...],
                                   targets: Tensor) -> tuple[list[Tensor], tuple[Tensor | None, ...]]:
        """One eval-mode forward on the stacked path: every site's activation and the gradient of the
        summed target with respect to it; every submodule's train/eval flag is restored afterwards."""
        captured: dict[int, Tensor] = {}
        input_calls: list[torch.Size] = []
        modes = [(module, module.training) for module in self.model.modules()]
        handles = [module.register_forward_hook(self._capture_hook(captured)) for module in self.modules]
        if self.input_module is not None:
            handles.append(self.input_module.register_forward_hook(path.interpolate_hook(input_calls)))
        try:
            self.model.eval()
            with torch.enable_grad():
                f = self.target_fn(self.model(*stacked), targets)
                if f.shape != (path.row_alpha.numel(),):
                    raise ValueError(
                        f"ConductanceEstimator: target_fn returned shape {tuple(f.shape)}, "
                        f"expected one value per row ({path.row_alpha.numel()},)"
                    )
                if self.input_module is not None and not input_calls:
                    raise RuntimeError("ConductanceEstimator: input_module was not called in the forward")
                activations = [self._captured(captured, name, module) for name, module in zip(self.names, self.modules)]
                return activations, torch.autograd.grad(f.sum(), activations, allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes:
                module.training = training

    def _capture_hook(self, captured: dict[int, Tensor]) -> Callable[[nn.Module, Any, Tensor], Tensor]:
        def capture(module: nn.Module, args: Any, output: Tensor) -> Tensor:
            if id(module) in captured:
                raise RuntimeError(
                    f"ConductanceEstimator: {self.names[self.modules.index(module)]!r} ran twice in "
                    "one forward; use one YDrop module per site"
                )
            captured[id(module)] = output
            # Downstream gets a copy (as in captum), so in-place ops after the site cannot overwrite
            # the captured activation and its gradient counts only paths through the site's output.
            return output.clone()

        return capture

    @staticmethod
    def _captured(captured: dict[int, Tensor], name: str, module: nn.Module) -> Tensor:
        if id(module) not in captured:
            raise RuntimeError(f"ConductanceEstimator: site {name!r} was not called in the forward")
        if not captured[id(module)].requires_grad:
            raise RuntimeError(f"ConductanceEstimator: site {name!r} does not depend on "
                               "the interpolated input (detached or under no_grad?)")
        return captured[id(module)]

    def update(self, inputs: Tensor | Sequence[Tensor], targets: Tensor) -> dict[str, Tensor]:
        """Score a random subsample of the batch and ``set_scores`` on every site.

        Each site's score is its conductance averaged over the subsampled rows and every axis but
        the unit axis (time for ``(B, T, N)``, space for ``(B, C, H, W)``): float32 ``(N,)``.
        Returns ``{name: scores}``.
        """
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        batch = inputs[0].shape[0]
        keep = max(1, int(batch * self.subsample))
        if keep < batch:
            rows = torch.randperm(batch, device=inputs[0].device)[:keep]
            inputs = tuple(tensor[rows] for tensor in inputs)
            targets = targets[rows]
        scores = {}
        for (name, cond), module in zip(self.conductance(inputs, targets).items(), self.modules):
            unit_dim = feature_dim(cond.ndim)
            scores[name] = cond.float().mean(dim=[d for d in range(cond.ndim) if d != unit_dim])
            module.set_scores(scores[name])
        return scores


def _batch_size(inputs: tuple[Tensor, ...], targets: Tensor) -> int:
    rows = inputs[0].shape[0]
    for i, tensor in enumerate(inputs):
        if tensor.shape[0] != rows:
            raise ValueError(f"ConductanceEstimator: inputs[{i}] has batch size "
                             f"{tensor.shape[0]}, inputs[0] has {rows}")
    if targets.shape[0] != rows:
        raise ValueError(f"ConductanceEstimator: targets has batch size {targets.shape[0]}, "
                         f"inputs have {rows}")
    return rows


class _Path:
    """The straight-line path of integrated gradients: ``steps + 1`` points alpha in [0, 1] for each of
    ``rows`` samples, stacked alpha-major ((alpha_0: all samples), (alpha_1: all samples), ...) like captum."""

    def __init__(self, steps: int, rows: int, device: torch.device) -> None:
        self.steps = steps
        self.row_alpha = torch.linspace(0.0, 1.0, steps + 1, device=device).repeat_interleave(rows)

    def scaled(self, tensor: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (tensor.ndim - 1)
        return self.row_alpha.to(tensor.dtype).view(shape) * tensor

    def repeat(self, tensor: Tensor) -> Tensor:
        return tensor.repeat(self.steps + 1, *([1] * (tensor.ndim - 1)))

    def interpolate_hook(self, calls: list[torch.Size]) -> Callable[[nn.Module, Any, Tensor], Tensor]:
        """A forward hook scaling the input module's output along the path (token models)."""
        def interpolate(module: nn.Module, args: Any, output: Tensor) -> Tensor:
            if output.shape[0] != self.row_alpha.numel():
                raise RuntimeError(
                    f"ConductanceEstimator: input_module output has {output.shape[0]} rows, "
                    f"expected (n_steps + 1) * batch = {self.row_alpha.numel()}"
                )
            calls.append(output.shape)
            z = self.scaled(output)
            return z if z.requires_grad else z.requires_grad_()

        return interpolate
