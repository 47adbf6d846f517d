"""The task interface and the training loop every task shares.

A task = data + model + train/eval loop + metric -> reward. It knows nothing of Ray: the search's
workers call :meth:`Task.fit` with an ``on_epoch`` callback that reports and checkpoints.
"""
from __future__ import annotations

import abc
import itertools
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch
from torch import nn

from autodropout.regularizers.training_step import prepare_step
from autodropout.search_spaces import SearchSpace
from autodropout.tasks.regularization import Regularization
from autodropout.tasks.reward import METRICS, reward


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the trial is treated as failed (never as a reward)."""


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced; ``metric`` is the validation value of ``Task.metric``."""

    epoch: int
    train_loss: float
    metric: float
    reward: float
    seconds: float
    val: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochRecord]

    @property
    def final(self) -> EpochRecord:
        return self.history[-1]


StateFn = Callable[[], dict[str, Any]]
EpochCallback = Callable[[EpochRecord, StateFn], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Task(abc.ABC):
    """Base class of the vision, language-model and translation tasks.

    Subclasses set ``kind``, ``metric``, ``space_type`` and implement ``load_data``,
    ``num_sites``, ``build_model``, ``train_batches``, ``loss`` and ``evaluate``.
    ``data`` may be passed in (the search shares one copy through Ray's object store).
    """

    kind: ClassVar[str]
    metric: ClassVar[str]
    space_type: ClassVar[type[SearchSpace]]

    def __init__(self, config: Any, data: Any = None) -> None:
        self.config = config
        self.data = data if data is not None else self.load_data(config)

    # -- to implement --------------------------------------------------------------------------
    @staticmethod
    @abc.abstractmethod
    def load_data(config: Any) -> Any: ...

    @property
    @abc.abstractmethod
    def num_sites(self) -> int: ...

    @abc.abstractmethod
    def build_model(self, regularization: Regularization) -> nn.Module: ...

    @abc.abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Any, torch.Tensor]]:
        """One epoch of (inputs, targets) training batches on the CPU."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics on ``split`` ("val" or "test"); must include ``self.metric``."""

    # -- shared --------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return METRICS[self.metric]

    def reward(self, value: float) -> float:
        return reward(self.metric, value, constant=getattr(self.config, "reward_constant", 80.0))

    def search_space(self, values: Mapping[str, Any] | None = None) -> SearchSpace:
        """The pattern space for this task's model (site count from the model)."""
        parsed = self.space_type.values_type.from_mapping(values or {})
        return self.space_type(self.num_sites, parsed)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.train.device)

    def fit(
        self,
        regularization: Regularization | None = None,
        *,
        epochs: int | None = None,
        seed: int | None = None,
        on_epoch: EpochCallback | None = None,
        resume_state: dict[str, Any] | None = None,
        progress: bool | None = None,
    ) -> FitResult:
        """Train a fresh model and evaluate on validation after every epoch.

        Args:
            regularization: what goes at the sites (default: nothing).
            epochs, seed: override the config's ``train.epochs`` / ``train.seed``.
            on_epoch: called after each epoch with the record and a function returning the full
                training state (for checkpoints); the search reports through it.
            resume_state: a state returned by that function; training continues after its epoch.
            progress: show a progress bar; ``None`` shows one only on a terminal.
        """
        cfg = self.config.train
        epochs = epochs or cfg.epochs
        seed = cfg.seed if seed is None else seed
        regularization = regularization or Regularization.none()
        device = self.device
        torch.manual_seed(seed)
        model = self.build_model(regularization).to(device)
        optimizer = _optimizer(model, cfg)
        steps_per_epoch = self.steps_per_epoch()
        scheduler = _scheduler(optimizer, cfg, epochs * steps_per_epoch, steps_per_epoch)
        generator = torch.Generator().manual_seed(seed)
        history: list[EpochRecord] = []
        start = 0
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
            generator.set_state(resume_state["generator"])
            torch.set_rng_state(resume_state["torch_rng"])
            history = [EpochRecord(**r) for r in resume_state["history"]]
            start = resume_state["epoch"]
        use_amp = cfg.mixed_precision and device.type == "cuda"
        show = sys.stderr.isatty() if progress is None else progress
        for epoch in range(start, epochs):
            began = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            batches = itertools.islice(self.train_batches(generator), steps_per_epoch)
            if show:
                from tqdm.auto import tqdm

                batches = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
            for step, (inputs, targets) in enumerate(batches):
                inputs, targets = _to(inputs, device), targets.to(device)
                prepare_step(model, inputs, targets, (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch),
                             **self.prepare_step_options(model))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = self.loss(model, inputs, targets)
                if not torch.isfinite(loss):
                    raise DivergedError(f"non-finite training loss {loss.item()} at epoch {epoch + 1}, step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                total += loss.item()
                count += 1
            val = self.evaluate(model, "val")
            value = val[self.metric]
            record = EpochRecord(epoch + 1, total / max(count, 1), value, self.reward(value),
                                 time.perf_counter() - began, val)
            history.append(record)
            if on_epoch is not None:
                on_epoch(record, lambda: _state(model, optimizer, scheduler, generator, history, epoch + 1))
        return FitResult(model, history)

    @abc.abstractmethod
    def num_train_batches(self) -> int:
        """Number of batches :meth:`train_batches` yields per epoch."""

    def prepare_step_options(self, model: nn.Module) -> dict[str, Any]:
        """Extra arguments of :func:`~autodropout.regularizers.training_step.prepare_step` (e.g. where
        Y-Drop's conductance interpolates for token inputs)."""
        return {}

    def steps_per_epoch(self) -> int:
        """Training steps per epoch: all batches, or ``train.max_batches_per_epoch`` when set."""
        limit = self.config.train.max_batches_per_epoch
        return min(self.num_train_batches(), limit) if limit else self.num_train_batches()


def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(x.to(device) for x in inputs)
    return inputs.to(device)


def _state(model, optimizer, scheduler, generator, history, epoch) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [r.__dict__ for r in history],
        "epoch": epoch,
    }


def _optimizer(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-D tensors), as is standard.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _scheduler(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
