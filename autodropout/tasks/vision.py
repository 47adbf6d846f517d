"""Image classification with a WideResNet: embedded digits, or CIFAR-10/100 from python batches."""
from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.config import VisionConfig
from autodropout.data.images import ImageSplits, augment, load_digits
from autodropout.models import WideResNet
from autodropout.search_spaces import ConvSpace
from autodropout.tasks.base import Task
from autodropout.tasks.regularization import Regularization


class VisionTask(Task):
    """WRN-``depth``-``width`` on ``dataset``; metric: validation accuracy (reward = accuracy)."""

    kind = "vision"
    metric = "accuracy"
    space_type = ConvSpace
    config: VisionConfig
    data: ImageSplits

    @staticmethod
    def load_data(config: VisionConfig) -> ImageSplits:
        if config.dataset == "digits":
            return load_digits(seed=config.train.seed, image_size=config.image_size,
                               val_fraction=config.val_fraction, test_fraction=config.test_fraction)
        from autodropout.data.cifar import load_cifar

        return load_cifar(config.root, num_classes=10 if config.dataset == "cifar10" else 100,
                          val_fraction=config.val_fraction, seed=config.train.seed)

    @property
    def num_sites(self) -> int:
        return WideResNet.num_sites_for(self.config.depth)

    def site_channels(self) -> list[int]:
        """Channels each site sees: WRN groups have 16k, 32k and 64k channels, sites/3 blocks each."""
        per_group = self.num_sites // 3
        return [c * self.config.width for c in (16, 32, 64) for _ in range(per_group)]

    def build_model(self, regularization: Regularization) -> nn.Module:
        if regularization.pattern is not None:
            from autodropout.regularizers.pattern_conv import conv_site_factories

            factories = conv_site_factories(regularization.pattern)
            if len(factories) != self.num_sites:
                raise ValueError(f"pattern has {len(factories)} sites, WRN-{self.config.depth} has {self.num_sites}")
        else:
            factories = [regularization.factory(channels) for channels in self.site_channels()]
        return WideResNet(self.config.depth, self.config.width, self.data.num_classes,
                          in_channels=self.data.in_channels, site_factories=factories)

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
