"""The training loop every task shares, and its settings (``train:`` in an experiment file).

One seeded loop: a fresh model, SGD or Adam(W) with decoupled weight decay on weight matrices only,
the regularizers' own penalties added to the loss (``auxiliary_loss``, e.g. Concrete Dropout's rate
term), warm-up then cosine (or constant) schedule, gradient clipping, bfloat16 autocast on CUDA,
validation after every epoch, and an ``on_epoch`` callback through which the search reports and
checkpoints.
A run resumed from such a checkpoint continues bit-exactly (model, optimizer, schedule and every RNG).
"""
from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from autodropout.apply.recalibration import recalibrate_batchnorm
from autodropout.core.config import check_fraction, check_non_negative, check_positive
from autodropout.regularizers.training_step import auxiliary_loss, prepare_step

if TYPE_CHECKING:
    from autodropout.tasks.base import Task
    from autodropout.tasks.regularization import Regularization


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every task.

    ``eval_every``: validate (and report, and checkpoint) every that many epochs and after the last.
    ``recalibrate_bn``: before each evaluation, recompute BatchNorm running statistics on the training
    data with every regularizer off (:mod:`autodropout.apply.recalibration`); no effect without BatchNorm.
    ``beta2``: Adam(W)'s second-moment decay. Transformers train with 0.98 (Vaswani et al., 2017,
    sec. 5.3): with PyTorch's 0.999 the small translation Transformer at lr 3e-3 stalls on a plateau
    for a seed-dependent time (docs/tasks.md).
    """

    epochs: int = 3
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    max_batches_per_epoch: int = 0
    eval_every: int = 1
    recalibrate_bn: bool = True
    #: torch intra-op threads of the training process. 0: in an experiment, the trial's CPUs
    #: (``search.cpus_per_trial``, at least 1, filled in by ``ExperimentConfig``); a bare task
    #: config with 0 leaves torch's setting as it is.
    threads: int = 0

    def __post_init__(self) -> None:
        check_positive(self, "epochs", "batch_size", "eval_every")
        check_non_negative(self, "lr", "momentum", "weight_decay", "warmup_epochs", "grad_clip",
                           "max_batches_per_epoch", "threads")
        check_fraction(self, "beta2")


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the trial is treated as failed (never as a reward)."""


@dataclass(frozen=True)
class EpochRecord:
    """What training up to ``epoch`` produced: the last epoch's mean training loss, the validation
    value of ``Task.metric`` and the seconds since the previous record (``eval_every`` epochs)."""

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


def set_threads(threads: int) -> int:
    """Use ``threads`` torch intra-op threads in this process (0: leave the setting); returns the
    number in use. The thread count changes the order of floating-point reductions, so two runs
    train bit-identical models only with the same count: every training path sets it from the
    config (``train.threads``) rather than inheriting the machine's default."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass
class _Run:
    """The mutable state of one training run: what a checkpoint holds."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    history: list[EpochRecord]
    epoch: int = 0

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [r.__dict__ for r in self.history],
            "epoch": self.epoch,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.epoch = state["epoch"]


def fit(task: Task, regularization: Regularization, *, epochs: int, seed: int,
        on_epoch: EpochCallback | None, resume_state: dict[str, Any] | None, progress: bool | None) -> FitResult:
    """Train a fresh model of ``task`` (see :meth:`Task.fit`, which documents the arguments)."""
    cfg = task.config.train
    device = task.device
    set_threads(cfg.threads)
    torch.manual_seed(seed)
    model = task.build_model(regularization).to(device)
    optimizer = _optimizer(model, cfg)
    steps = task.steps_per_epoch()
    run = _Run(model, optimizer, _scheduler(optimizer, cfg, epochs * steps, steps),
               torch.Generator().manual_seed(seed), [])
    if resume_state is not None:
        run.load(resume_state)
    show = sys.stderr.isatty() if progress is None else progress
    began = time.perf_counter()
    while run.epoch < epochs:
        train_loss = _train_epoch(task, run, epochs, steps, show)
        run.epoch += 1
        if run.epoch % cfg.eval_every and run.epoch < epochs:
            continue
        if cfg.recalibrate_bn:
            recalibrate_batchnorm(model, task.calibration_batches(), device)
        val = task.evaluate(model, "val")
        value = val[task.metric]
        run.history.append(EpochRecord(run.epoch, train_loss, value, task.reward(value),
                                       time.perf_counter() - began, val))
        if on_epoch is not None:
            on_epoch(run.history[-1], run.state)
        began = time.perf_counter()
    return FitResult(model, run.history)


def _train_epoch(task: Task, run: _Run, epochs: int, steps: int, show: bool) -> float:
    """One epoch of training steps; returns the mean training loss."""
    cfg, device, model = task.config.train, task.device, run.model
    use_amp = cfg.mixed_precision and device.type == "cuda"
    model.train()
    total, count = 0.0, 0
    batches: Iterable = itertools.islice(task.train_batches(run.generator), steps)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=steps, desc=f"epoch {run.epoch + 1}/{epochs}", leave=False)
    for step, (inputs, targets) in enumerate(batches):
        inputs, targets = _to(inputs, device), targets.to(device)
        prepare_step(model, inputs, targets, (run.epoch * steps + step) / (epochs * steps))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = task.loss(model, inputs, targets)
        # Regularizers' own penalties (Concrete Dropout's rate term) are optimised, not reported: the
        # recorded training loss stays the data loss, comparable across regularizers (as weight decay).
        objective = loss + auxiliary_loss(model)
        if not torch.isfinite(objective):
            raise DivergedError(f"non-finite training loss {objective.item()} at epoch {run.epoch + 1}, step {step}")
        run.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        total += loss.item()
        count += 1
    return total / max(count, 1)


def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(x.to(device) for x in inputs)
    return inputs.to(device)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-D tensors), as is standard.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, steps_per_epoch: int) -> Any:
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
