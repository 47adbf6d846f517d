"""Image classification data: split containers, the embedded digits set, and batch augmentations.

The embedded default is scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, it ships
inside the scikit-learn wheel, so nothing downloads), upsampled so that the ConvNet patterns of
AutoDropout (Pham & Le, AAAI 2021, arXiv 2101.01761) have room to tile. CIFAR lives in ``cifar.py``
and returns the same :class:`ImageSplits`.

Augmentations work on a whole batch at once (no per-sample Python loop, no DataLoader workers) and
draw their randomness from an explicit ``torch.Generator`` so that a seeded run is reproducible.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from autodropout.core.checks import is_int, is_real

__all__ = [
    "AUGMENTATIONS",
    "ImageSplit",
    "ImageSplits",
    "augment",
    "augment_cifar",
    "augment_digits",
    "load_digits",
    "normalize_per_channel",
    "stratified_split",
]


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``x`` is (N, C, H, W) float32, ``y`` is (N,) int64 class indices."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 4:
            raise ValueError(f"ImageSplit.x: expected shape (N, C, H, W), got {tuple(self.x.shape)}")
        if self.y.dim() != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"ImageSplit.y: expected shape ({self.x.shape[0]},) to match x, "
                f"got {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class ImageSplits:
    """Train / validation / test splits of one image dataset, normalized with train statistics.

    ``mean`` and ``std`` are the per-channel statistics that were subtracted / divided (in the
    [0, 1] pixel scale), kept so that images can be shown un-normalized. ``augmentation`` names the
    entry of :data:`AUGMENTATIONS` that suits this dataset. The search only ever sees ``val``.
    """

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    num_classes: int
    in_channels: int
    image_size: int
    name: str
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str


def _check_fraction(name: str, value: float) -> None:
    if not is_real(value, 0.0, 1.0, high_open=True):
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integer counts per class summing to ``total``, each within one of its real-valued quota."""
    counts = np.floor(quotas).astype(np.int64)
    # Stable sort so ties go to the lower class index: the allocation must not depend on the seed.
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def stratified_split(
    labels: np.ndarray | torch.Tensor,
    val_fraction: float,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split example indices into train / val / test with the class proportions of ``labels``.

    The split sizes are ``round(N * fraction)``, spread over the classes by largest remainder, so
    every class keeps its share up to one example. Which examples go where is a seeded permutation
    per class: the same seed gives the same split on any machine. Returns three sorted int64 index
    arrays that partition ``range(N)``.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction: expected < 1 so that training data remain, "
            f"got {val_fraction} + {test_fraction}"
        )
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels: expected a non-empty 1-D array, got shape {y.shape}")
    classes, per_class = np.unique(y, return_counts=True)
    n_test = _largest_remainder(per_class * test_fraction, round(y.size * test_fraction))
    n_val = _largest_remainder(per_class * val_fraction, round(y.size * val_fraction))
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c, total, nv, nt in zip(classes, per_class, n_val, n_test):
        if total - nv - nt < 1:
            raise ValueError(
                f"labels: class {c} has {total} example(s), too few to leave one for training "
                f"after val_fraction={val_fraction} and test_fraction={test_fraction}"
            )
        idx = rng.permutation(np.flatnonzero(y == c))
        parts[0].append(idx[nv + nt :])
        parts[1].append(idx[:nv])
        parts[2].append(idx[nv : nv + nt])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def normalize_per_channel(
    train: torch.Tensor, *others: torch.Tensor
) -> tuple[list[torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    """Standardize every tensor (N, C, H, W) with the per-channel mean / std of ``train``.

    Statistics come from the training split only, so validation and test never leak into the
    preprocessing. Returns the normalized tensors (train first) and the (mean, std) used.
    """
    if train.dim() != 4 or train.shape[0] == 0:
        raise ValueError(f"train: expected a non-empty (N, C, H, W) tensor, got {tuple(train.shape)}")
    # float64 statistics, one channel at a time: exact enough for 50k CIFAR images, and the copy
    # is a third of the data instead of all of it.
    moments = [torch.var_mean(train[:, c].double(), unbiased=False) for c in range(train.shape[1])]
    mean = tuple(float(m) for _, m in moments)
    std = tuple(max(float(v) ** 0.5, 1e-12) for v, _ in moments)
    shift = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    normalized = [(t.float() - shift.to(t.device)) / scale.to(t.device) for t in (train, *others)]
    return normalized, mean, std


def with_label_noise(splits: ImageSplits, fraction: float, seed: int) -> ImageSplits:
    """``splits`` with ``fraction`` of the *training* labels replaced by a different class, drawn
    uniformly from ``seed``; validation and test stay clean.

    Symmetric label noise is the classic regime where a network memorizes what it cannot generalize
    and regularization pays (Zhang et al., 2017; Arpit et al., 2017, who show dropout slows the
    memorization of noisy labels). Exactly ``round(fraction * N)`` labels change. ``y``: (N,) int64.
    """
    if fraction == 0:
        return splits
    y = splits.train.y.clone()
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(y), generator=generator)[: round(fraction * len(y))]
    # A shift of 1..C-1 classes: never the true label, every other label equally likely.
    shift = torch.randint(1, splits.num_classes, (len(index),), generator=generator)
    y[index] = (y[index] + shift) % splits.num_classes
    return replace(splits, train=ImageSplit(splits.train.x, y))


def load_digits(
    seed: int = 0,
    image_size: int = 16,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> ImageSplits:
    """scikit-learn's handwritten digits as a small, real image task that needs no download.

    1,797 grey 8x8 scans of the digits 0-9 (``sklearn.datasets.load_digits``, UCI optdigits test
    set), split stratified from ``seed``, upsampled bilinearly to ``image_size`` and standardized with
    the training mean / std. Shapes: ``x`` (N, 1, image_size, image_size) float32, ``y`` (N,) int64.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    if not is_int(image_size, 8):
        raise ValueError(f"image_size: expected an int >= 8 (the scans are 8x8), got {image_size!r}")
    bunch = sk_load_digits()
    # The scans hold counts 0..16 of set pixels per 4x4 block of the original 32x32 bitmap.
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    train_idx, val_idx, test_idx = stratified_split(y, val_fraction, test_fraction, seed)
    (x_train, x_val, x_test), mean, std = normalize_per_channel(
        x[train_idx], x[val_idx], x[test_idx]
    )
    return ImageSplits(
        train=ImageSplit(x_train, y[train_idx]),
        val=ImageSplit(x_val, y[val_idx]),
        test=ImageSplit(x_test, y[test_idx]),
        num_classes=10,
        in_channels=1,
        image_size=image_size,
        name="digits",
        class_names=tuple(str(d) for d in range(10)),
        mean=mean,
        std=std,
        augmentation="digits",
    )


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float32)
    return (low + (high - low) * u).to(like.device)


def augment_digits(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    max_shift: float | None = None,
    max_scale: float = 0.1,
) -> torch.Tensor:
    """Random small translation and zoom of each image in a batch (N, C, H, W) -> same shape.

    Shifts are uniform in [-max_shift, max_shift] pixels per axis (default H / 8: one pixel of the
    original 8x8 scan, two at 16x16), zoom uniform in [1 - max_scale, 1 + max_scale]. Pixels
    entering from outside repeat the border, which is background for these scans (the data are
    normalized, so zero would be grey, not background). No horizontal flips: digits are not mirror
    symmetric (a flipped 2 or 7 is no digit, a flipped 3 looks like an epsilon).
    """
    if x.dim() != 4:
        raise ValueError(f"x: expected shape (N, C, H, W), got {tuple(x.shape)}")
    n, _, h, w = x.shape
    if max_shift is None:
        max_shift = h / 8
    if max_shift < 0 or not 0 <= max_scale < 1:
        raise ValueError(
            f"max_shift / max_scale: expected max_shift >= 0 and 0 <= max_scale < 1, "
            f"got {max_shift}, {max_scale}"
        )
    with torch.no_grad():
        zoom = _uniform(n, 1 - max_scale, 1 + max_scale, generator, x)
        # affine_grid works in [-1, 1] coordinates, where one pixel spans 2 / size.
        tx = _uniform(n, -max_shift, max_shift, generator, x) * (2 / w)
        ty = _uniform(n, -max_shift, max_shift, generator, x) * (2 / h)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
        theta[:, 0, 0] = 1 / zoom
        theta[:, 1, 1] = 1 / zoom
        theta[:, 0, 2] = tx
        theta[:, 1, 2] = ty
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment_cifar(
    x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """The standard CIFAR augmentation: random crop after ``padding`` zero pixels, horizontal flip.

    (N, C, H, W) -> same shape. The input is already normalized, so the zero padding is the
    dataset-mean colour, as in the usual pipelines that pad after normalizing.
    """
    if x.dim() != 4:
        raise ValueError(f"x: expected shape (N, C, H, W), got {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding: expected >= 0, got {padding}")
    n, c, h, w = x.shape
    device = generator.device if generator is not None else x.device
    with torch.no_grad():
        padded = F.pad(x, (padding, padding, padding, padding))
        offset_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        offset_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        rows = (offset_y.to(x.device)[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (offset_x.to(x.device)[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        out = padded[batch, channel, rows, cols]
        if flip:
            mirror = torch.rand(n, generator=generator, device=device) < 0.5
            out = torch.where(mirror.to(x.device)[:, None, None, None], out.flip(-1), out)
        return out


def _no_augmentation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x


AUGMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "none": _no_augmentation,
    "digits": augment_digits,
    "cifar": augment_cifar,
}


def augment(
    x: torch.Tensor, generator: torch.Generator | None = None, name: str = "digits"
) -> torch.Tensor:
    """Apply the batch augmentation registered as ``name`` (see :data:`AUGMENTATIONS`).

    ``x`` (N, C, H, W) -> same shape, same dtype and device. ``ImageSplits.augmentation`` names the
    one that suits a dataset: ``"digits"`` (shift + zoom, no flips) or ``"cifar"`` (crop + flip).
    """
    try:
        fn = AUGMENTATIONS[name]
    except KeyError:
        raise ValueError(
            f"augmentation name: unknown {name!r}; valid names: {', '.join(sorted(AUGMENTATIONS))}"
        ) from None
    return fn(x, generator)
