"""Pre-activation Wide ResNet (Zagoruyko & Komodakis, BMVC 2016, arXiv 1605.07146) with one
regularizer site per residual block, where AutoDropout (Pham & Le 2021) applies its conv patterns.

WRN-d-k has (d - 4) / 6 blocks in each of 3 groups of 16k, 32k, 64k channels (strides 1, 2, 2) after
a 3x3 stem of 16 channels, then BN-ReLU, global average pooling and a linear classifier. The layout
and initialisation follow the reference code (szagoruyko/wide-residual-networks; the PyTorch port
xternalz/WideResNet-pytorch): Kaiming-normal convolutions over fan-out, BatchNorm weight 1 / bias 0,
classifier bias 0. Parameter counts: WRN-28-10 36.5M, WRN-28-2 1.47M (CIFAR, 10 classes).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.core.checks import is_int
from autodropout.models.sites import ConvSites, Factory
from autodropout.models.transformer_layer import build_site


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-[site]-ReLU-conv3x3, plus the shortcut.

    The site sees the second BatchNorm's output, shape (B, out_channels, H / stride, W / stride):
    the paper applies its patterns to BatchNorm outputs because elsewhere the search was unstable.
    When the site module has ``masks_residual = True`` (a learned conv pattern whose ``residual``
    token is on), it is called a second time on the shortcut's output, which has the same shape;
    that second call draws an independent sample of the same pattern.

    A block that changes the channels or the resolution (the first of a group, except in group 1 of
    WRN-d-1) has a 1x1 convolution of the pre-activated input as its shortcut, as in the reference
    code; otherwise the shortcut is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, site: nn.Module | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.site = site
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            None if in_channels == out_channels and stride == 1
            else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.bn2(self.conv1(out))
        if self.site is not None:
            out = self.site(out)
            if getattr(self.site, "masks_residual", False):
                shortcut = self.site(shortcut)
        return shortcut + self.conv2(F.relu(out))


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for images (B, in_channels, H, W) -> logits (B, num_classes).

    Args:
        depth: total depth d; (d - 4) must be a positive multiple of 6 (10, 16, 22, 28, ...).
        width: widening factor k >= 1.
        num_classes: number of output classes.
        in_channels: image channels (3 for CIFAR, 1 for digits).
        site_factories: ``None`` (no regularization) or one factory-or-None per site, i.e. per
            residual block in forward order (see :class:`WideBasicBlock` for where a site acts).
        stem_stride: stride of the 3x3 stem convolution (2 halves the maps for larger images).

    Sites are ``blocks[i].site``; :meth:`site_shapes` gives the (C, H, W) each of them sees.
    """

    GROUP_STRIDES = (1, 2, 2)

    def __init__(
        self,
        depth: int,
        width: int,
        num_classes: int,
        in_channels: int = 3,
        site_factories: Sequence[Factory | None] | None = None,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        num_sites = self.num_sites_for(depth)
        for name, value in (("width", width), ("num_classes", num_classes),
                            ("in_channels", in_channels), ("stem_stride", stem_stride)):
            _check_positive_int(name, value)
        if site_factories is None:
            site_factories = [None] * num_sites
        elif isinstance(site_factories, (str, bytes)) or not isinstance(site_factories, Sequence):
            raise TypeError(f"site_factories: expected a sequence of {num_sites} factories-or-None or None, "
                            f"got {type(site_factories).__name__}")
        elif len(site_factories) != num_sites:
            raise ValueError(f"site_factories: WRN-{depth}-{width} has {num_sites} sites, "
                             f"got {len(site_factories)} factories")
        self.depth, self.width, self.stem_stride = depth, width, stem_stride
        self.channels = self.group_channels(width)
        self.strides = self.GROUP_STRIDES

        self.stem = nn.Conv2d(in_channels, 16, 3, stride=stem_stride, padding=1, bias=False)
        blocks, channels_in = [], 16
        per_group = num_sites // 3
        for group, (channels, stride) in enumerate(zip(self.channels, self.strides)):
            for j in range(per_group):
                index = group * per_group + j
                site = build_site(site_factories[index], f"site_factories[{index}]")
                blocks.append(WideBasicBlock(channels_in, channels, stride if j == 0 else 1, site))
                channels_in = channels
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels_in)
        self.fc = nn.Linear(channels_in, num_classes)
        self._init_weights()

    @staticmethod
    def num_sites_for(depth: int) -> int:
        """Number of pattern sites (= residual blocks) of a WRN of this depth: 3 (d - 4) / 6."""
        if not is_int(depth, 10) or (depth - 4) % 6:
            raise ValueError(f"depth: expected an int d >= 10 with (d - 4) divisible by 6 "
                             f"(10, 16, 22, 28, ...), got {depth!r}")
        return 3 * ((depth - 4) // 6)

    @property
    def num_sites(self) -> int:
        return len(self.blocks)

    def site_shapes(self, image_size: int | tuple[int, int]) -> list[tuple[int, int, int]]:
        """(C, H, W) of the activation each site sees, in site order, for images of ``image_size``
        (an int for square images or (H, W))."""
        return list(self.site_layout(self.depth, self.width, image_size, self.stem_stride).shapes)

    @classmethod
    def site_layout(cls, depth: int, width: int, image_size: int | tuple[int, int], stem_stride: int = 1) -> ConvSites:
        """Where the sites of WRN-``depth``-``width`` are and what they see, before building one."""
        num_sites = cls.num_sites_for(depth)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or not all(is_int(s, 1) for s in size):
            raise ValueError(f"image_size: expected a positive int or (H, W) of positive ints, got {image_size!r}")
        # A 3x3 convolution with padding 1 and stride s maps n to floor((n - 1) / s) + 1.
        h, w = ((n - 1) // stem_stride + 1 for n in size)
        shapes = []
        for channels, stride in zip(cls.group_channels(width), cls.GROUP_STRIDES):
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
            shapes += [(channels, h, w)] * (num_sites // 3)
        return ConvSites(tuple(shapes))

    @staticmethod
    def group_channels(width: int) -> tuple[int, int, int]:
        """Channels of the three groups of WRN-d-``width``: 16k, 32k, 64k."""
        return 16 * width, 32 * width, 64 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.stem.in_channels:
            raise ValueError(f"x: expected images of shape (B, {self.stem.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        out = self.blocks(self.stem(x))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.fc(out)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, num_sites={self.num_sites}, stem_stride={self.stem_stride}"

    def _init_weights(self) -> None:
        # Only our own convolutions: site modules (which may hold layers of their own) keep their
        # initialisation. BatchNorm's PyTorch default (weight 1, bias 0) is already the reference's.
        convs = [self.stem] + [c for b in self.blocks for c in (b.conv1, b.conv2, b.shortcut) if c is not None]
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

def _check_positive_int(name: str, value: object) -> None:
    if not is_int(value, 1):
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
