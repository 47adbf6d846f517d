"""Digits loader, stratified splitting, normalization and batch augmentations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from autodropout.data import (
    AUGMENTATIONS,
    augment,
    augment_cifar,
    augment_digits,
    load_digits,
    stratified_split,
    with_label_noise,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def digit_labels():
    return sk_load_digits().target


def test_digits_shapes_dtypes_and_sizes(digits):
    total = len(digits.train) + len(digits.val) + len(digits.test)
    assert total == 1797
    # round(1797 * 0.15) = 270 for each held-out split
    assert len(digits.val) == 270 and len(digits.test) == 270
    for split in (digits.train, digits.val, digits.test):
        assert split.x.shape[1:] == (1, 16, 16)
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
    assert (digits.num_classes, digits.in_channels, digits.image_size) == (10, 1, 16)
    assert digits.name == "digits" and digits.augmentation == "digits"
    assert digits.class_names == tuple("0123456789")


def test_digits_normalized_with_train_statistics(digits):
    assert digits.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train.x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # held-out splits reuse the train statistics, so they are only approximately standardized
    assert abs(digits.val.x.mean().item()) < 0.2
    assert digits.val.x.mean().item() != pytest.approx(0.0, abs=1e-5)


def test_digits_native_size_matches_sklearn_pixels(digit_labels):
    splits = load_digits(seed=3, image_size=8)
    train_idx, _, test_idx = stratified_split(digit_labels, 0.15, 0.15, seed=3)
    images = sk_load_digits().images / 16.0
    restored = splits.test.x[:, 0] * splits.std[0] + splits.mean[0]
    np.testing.assert_allclose(restored.numpy(), images[test_idx], atol=1e-5)
    assert splits.train.y.tolist() == digit_labels[train_idx].tolist()


def test_digits_same_seed_same_split_and_different_seed_differs(digits):
    again = load_digits(seed=0)
    other = load_digits(seed=1)
    assert torch.equal(again.test.x, digits.test.x) and torch.equal(again.test.y, digits.test.y)
    assert not torch.equal(other.test.x, digits.test.x)


def test_digits_rejects_bad_image_size():
    with pytest.raises(ValueError, match="image_size"):
        load_digits(image_size=4)


def test_stratified_split_partitions_and_keeps_class_shares(digit_labels):
    train, val, test = stratified_split(digit_labels, 0.15, 0.15, seed=0)
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(digit_labels)
    assert set(everything.tolist()) == set(range(len(digit_labels)))  # disjoint and complete
    per_class = np.bincount(digit_labels)
    for idx in (val, test):
        assert len(idx) == round(len(digit_labels) * 0.15)
        share = np.bincount(digit_labels[idx], minlength=10)
        assert np.all(np.abs(share - per_class * 0.15) < 1.0)


def test_stratified_split_is_seeded(digit_labels):
    a = stratified_split(digit_labels, 0.2, 0.1, seed=5)
    b = stratified_split(digit_labels, 0.2, 0.1, seed=5)
    c = stratified_split(digit_labels, 0.2, 0.1, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_stratified_split_small_exact_case():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    train, val, test = stratified_split(labels, val_fraction=0.2, test_fraction=0.0, seed=0)
    # 2 validation examples: quotas 0.8 and 1.2 -> one per class
    assert sorted(labels[val].tolist()) == [0, 1]
    assert len(test) == 0 and len(train) == 8


def test_stratified_split_errors_name_the_parameter():
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, val_fraction=1.5)
    with pytest.raises(ValueError, match=r"val_fraction \+ test_fraction"):
        stratified_split(labels, val_fraction=0.6, test_fraction=0.5)
    # one validation example, quotas 0.5 / 0.5: the tie goes to class 0, which then has no
    # training example left
    with pytest.raises(ValueError, match="class 0 has 1 example"):
        stratified_split(np.array([0, 1]), val_fraction=0.5)


@pytest.mark.parametrize("name", ["digits", "cifar"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_augment_keeps_shape_dtype_and_is_not_identity(digits, name, dtype):
    x = digits.train.x[:32].to(dtype)
    out = augment(x, torch.Generator().manual_seed(0), name)
    assert out.shape == x.shape and out.dtype == dtype
    assert (out.float() - x.float()).abs().mean().item() > 0.05


@pytest.mark.parametrize("name", ["digits", "cifar"])
def test_augment_is_reproducible_from_the_generator(digits, name):
    x = digits.train.x[:16]
    a = augment(x, torch.Generator().manual_seed(1), name)
    b = augment(x, torch.Generator().manual_seed(1), name)
    c = augment(x, torch.Generator().manual_seed(2), name)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_digits_without_shift_or_zoom_is_identity(digits):
    x = digits.train.x[:8]
    out = augment_digits(x, torch.Generator().manual_seed(0), max_shift=0.0, max_scale=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_augment_digits_moves_mass_by_at_most_the_shift(digits):
    # Centre of mass of the (shifted to non-negative) images moves by no more than
    # max_shift pixels plus the small zoom effect.
    x = digits.train.x[:64]
    out = augment_digits(x, torch.Generator().manual_seed(0), max_shift=2.0, max_scale=0.0)
    grid = torch.arange(16, dtype=torch.float32)

    def centre_x(img):
        w = img[:, 0] - img.amin(dim=(1, 2, 3))[:, None, None]
        return (w.sum(dim=1) * grid).sum(dim=1) / w.sum(dim=(1, 2))

    moved = (centre_x(out) - centre_x(x)).abs()
    assert moved.max().item() < 2.5 and moved.mean().item() > 0.2


def test_augment_cifar_is_a_padded_crop_with_flips():
    n, c, h, w = 200, 3, 8, 8
    x = torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) + 1.0
    out = augment_cifar(x, torch.Generator().manual_seed(0), padding=2, flip=True)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(n):
        windows = [padded[i, :, dy : dy + h, dx : dx + w] for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(out[i], win) for win in windows)
        mirrored = any(torch.equal(out[i], win.flip(-1)) for win in windows)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 0.4 < flipped / n < 0.6  # fair coin, seed 0; 200 draws have sd 0.035


def test_augment_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="cifar, digits, none"):
        augment(torch.zeros(1, 1, 8, 8), None, "mirror")
    assert set(AUGMENTATIONS) == {"none", "digits", "cifar"}


def test_label_noise_changes_exactly_that_fraction_of_training_labels_to_other_classes(digits):
    noisy = with_label_noise(digits, 0.4, seed=3)
    changed = noisy.train.y != digits.train.y
    assert changed.sum().item() == round(0.4 * len(digits.train))  # never flipped onto the true label
    assert noisy.train.y.dtype == torch.int64 and int(noisy.train.y.max()) < digits.num_classes
    # Validation, test and the images themselves are untouched; the flip is uniform over other classes.
    assert noisy.val is digits.val and noisy.test is digits.test and noisy.train.x is digits.train.x
    shift = (noisy.train.y[changed] - digits.train.y[changed]) % digits.num_classes
    counts = torch.bincount(shift, minlength=digits.num_classes)[1:].float()
    expected = changed.sum() / (digits.num_classes - 1)
    assert counts.min() > 0.5 * expected and counts.max() < 1.6 * expected
    assert torch.equal(with_label_noise(digits, 0.4, seed=3).train.y, noisy.train.y)
    assert not torch.equal(with_label_noise(digits, 0.4, seed=4).train.y, noisy.train.y)
    assert with_label_noise(digits, 0.0, seed=3) is digits

