"""Image classification with a WideResNet: embedded digits, or CIFAR-10/100 from python batches."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.core.config import check_fraction, check_positive
from autodropout.core.errors import ConfigError
from autodropout.data.images import ImageSplits, augment, load_digits, with_label_noise
from autodropout.models import ConvSites, WideResNet
from autodropout.search_spaces import ConvSpace
from autodropout.tasks.base import Task, TaskSites
from autodropout.tasks.loop import TrainConfig
from autodropout.tasks.registry import register_task
from autodropout.tasks.regularization import Regularization


@dataclass(frozen=True)
class VisionConfig:
    """Image classification with a WideResNet (``kind: vision``).

    ``split_seed`` draws the train / validation / test split, independently of ``train.seed``: a
    pattern retrained with new training seeds is scored on the same held-out images, never on the
    validation images its search saw. ``label_noise``: the fraction of training labels replaced by
    another class (drawn from ``split_seed``; validation and test stay clean), the memorization regime
    where regularization pays (:func:`~autodropout.data.images.with_label_noise`).
    """

    kind: Literal["vision"] = "vision"
    dataset: Literal["digits", "cifar10", "cifar100"] = "digits"
    root: str | None = None
    image_size: int = 16
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: bool = True
    split_seed: int = 0
    label_noise: float = 0.0
    depth: int = 10
    width: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_positive(self, "image_size", "depth", "width")
        if (self.depth - 4) % 6:
            raise ConfigError(f"depth: WideResNet depth must be 6n+4 (10, 16, 22, 28, ...), got {self.depth}")
        if self.dataset != "digits" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder of its python batches)")
        check_fraction(self, "val_fraction", "test_fraction")
        check_fraction(self, "label_noise", allow_zero=True)


#: Side of the CIFAR python batches' images; the task reads them at this size whatever ``image_size``
#: says (only the embedded digits are resampled to ``image_size``).
CIFAR_SIDE = 32


@register_task
class VisionTask(Task):
    """WRN-``depth``-``width`` on ``dataset``; metric: validation accuracy (reward = accuracy)."""

    kind = "vision"
    config_type = VisionConfig
    metric = "accuracy"
    space_type = ConvSpace
    site_kind = "conv"
    config: VisionConfig
    data: ImageSplits

    @staticmethod
    def load_data(config: VisionConfig) -> ImageSplits:
        if config.dataset == "digits":
            splits = load_digits(seed=config.split_seed, image_size=config.image_size,
                                 val_fraction=config.val_fraction, test_fraction=config.test_fraction)
        else:
            from autodropout.data.cifar import load_cifar

            splits = load_cifar(config.root, num_classes=10 if config.dataset == "cifar10" else 100,
                                val_fraction=config.val_fraction, seed=config.split_seed)
        return with_label_noise(splits, config.label_noise, config.split_seed)

    @classmethod
    def describe_sites(cls, config: VisionConfig) -> TaskSites:
        side = config.image_size if config.dataset == "digits" else CIFAR_SIDE
        layout = WideResNet.site_layout(config.depth, config.width, side)
        return TaskSites(f"WRN-{config.depth}-{config.width}", cls.space_type.kind, layout.shapes,
                         None if config.dataset == "digits" else config.root, layout)

    @property
    def site_layout(self) -> ConvSites:
        c = self.config
        return WideResNet.site_layout(c.depth, c.width, tuple(self.data.train.x.shape[-2:]))

    def build_model(self, regularization: Regularization) -> nn.Module:
        return WideResNet(self.config.depth, self.config.width, self.data.num_classes,
                          in_channels=self.data.in_channels, **regularization.model_sites(self.site_layout))

    def num_train_batches(self) -> int:
        return -(-len(self.data.train) // self.config.train.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        split, size = self.data.train, self.config.train.batch_size
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(split), size):
            index = order[start:start + size]
            x = split.x[index]
            if self.config.augment:
                x = augment(x, generator, self.data.augmentation)
            yield x, split.y[index]

    def calibration_batches(self) -> Iterator[torch.Tensor]:
        """The training images without augmentation, in order (what eval-mode BatchNorm should match)."""
        x, size = self.data.train.x, self.config.train.batch_size
        limit = self.steps_per_epoch() * size
        return (x[start:start + size] for start in range(0, min(len(x), limit), size))

    def loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(inputs), targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        data = {"val": self.data.val, "test": self.data.test}[split]
        model.eval()
        correct, total_loss = 0, 0.0
        for start in range(0, len(data), 512):
            x = data.x[start:start + 512].to(self.device)
            y = data.y[start:start + 512].to(self.device)
            logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
        return {"accuracy": correct / len(data), "loss": total_loss / len(data)}
