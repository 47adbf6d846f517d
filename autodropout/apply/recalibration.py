"""BatchNorm recalibration: running statistics recomputed on training batches with every regularizer off.

Dropout-like masks change the variance of what a BatchNorm layer sees during training. Eval-mode
BatchNorm then normalises unmasked activations with running statistics collected on masked,
rescaled ones: the *variance shift* of Li, Chen, Hu & Yang ("Understanding the Disharmony between
Dropout and Batch Normalization by Variance Shift", CVPR 2019). A heavy pattern can take a network
whose training loss falls to chance accuracy in eval mode, so that a search would score the artefact
rather than the pattern. Recomputing the statistics with the regularizers off before evaluating (as
SWA does for averaged weights, Izmailov et al. 2018) removes it.

>>> handle = ad.apply_patterns(model, "best_patterns.json", where=nn.BatchNorm2d)
>>> train(model)
>>> ad.recalibrate_batchnorm(model, (x for x, _ in train_loader))   # before evaluating
>>> evaluate(model)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

from autodropout.apply.hooks import patterns_paused


class _OnlyBatchNormTrains(nn.Module):
    """``update_bn`` puts the whole model in training mode before its pass; this wrapper turns every
    module but the BatchNorm layers back to eval mode before each forward, so dropout, DropBlock,
    learned patterns and any other module that acts on ``training`` are off while the statistics
    are collected."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Any) -> Any:
        for module in self.model.modules():
            # Set the flag directly: .eval() would recurse into the BatchNorm layers too.
            module.training = isinstance(module, _BatchNorm)
        return self.model(*inputs) if isinstance(inputs, (tuple, list)) else self.model(inputs)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], device: torch.device | str | None = None) -> bool:
    """Recompute the running mean and variance of every BatchNorm layer of ``model`` as exact averages
    over ``batches`` (``torch.optim.swa_utils.update_bn``), with every other module in eval mode and
    the hooks of :func:`~autodropout.apply.hooks.apply_patterns` paused.

    Args:
        model: any ``nn.Module``; each module's train/eval flag is restored afterwards.
        batches: model inputs, e.g. the training images without augmentation; a batch that is a
            tuple or list is passed as ``model(*batch)``.
        device: moves each tensor batch there first (default: as given).

    Returns:
        Whether the model has BatchNorm layers (without any, nothing is done and ``batches`` is not
        consumed).
    """
    if not has_batchnorm(model):
        return False
    modes = [(module, module.training) for module in model.modules()]
    # update_bn unpacks tuples to their first element; wrap each batch so ours arrive whole.
    wrapped = ([_to(batch, device)] for batch in batches)
    try:
        with patterns_paused():
            update_bn(wrapped, _OnlyBatchNormTrains(model))
    finally:
        for module, training in modes:
            module.training = training
    return True


def _to(batch: Any, device: torch.device | str | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(x.to(device) for x in batch)
    return batch.to(device)
