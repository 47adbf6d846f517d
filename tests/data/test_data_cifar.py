"""CIFAR loader on small batch files written in the real python-pickle format."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from autodropout.data import load_cifar


def _write(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def make_cifar10(folder, per_batch=20, n_test=10, seed=0):
    """The layout of cifar-10-batches-py; bytes keys, as the Python 2 originals load."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = []
    for i in range(1, 6):
        batch = {b"batch_label": b"training batch", b"data": _rows(rng, per_batch),
                 b"labels": [int(v) for v in np.arange(per_batch) % 10],
                 b"filenames": [b"x.png"] * per_batch}
        _write(folder / f"data_batch_{i}", batch)
        batches.append(batch)
    test = {b"data": _rows(rng, n_test), b"labels": [int(v) for v in np.arange(n_test) % 10]}
    _write(folder / "test_batch", test)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    _write(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch})
    return batches, test


def make_cifar100(folder, n_train=300, n_test=100, seed=0):
    """The layout of cifar-100-python, re-pickled under Python 3 (str keys, protocol 5)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train = {"data": _rows(rng, n_train), "fine_labels": list(np.arange(n_train) % 100),
             "coarse_labels": list(np.arange(n_train) % 20)}
    test = {"data": _rows(rng, n_test), "fine_labels": list(np.arange(n_test) % 100),
            "coarse_labels": list(np.arange(n_test) % 20)}
    _write(folder / "train", train, protocol=5)
    _write(folder / "test", test, protocol=5)
    _write(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                             "coarse_label_names": [f"super{i}" for i in range(20)]}, protocol=5)
    return train, test


@pytest.fixture()
def cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches, test = make_cifar10(folder)
    return folder, batches, test


def test_cifar10_shapes_split_and_names(cifar10):
    folder, _, _ = cifar10
    splits = load_cifar(folder, num_classes=10, val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 10)
    assert splits.train.x.shape == (90, 3, 32, 32) and splits.train.x.dtype == torch.float32
    assert splits.train.y.dtype == torch.int64
    # 10% held out, stratified: one validation image per class
    assert sorted(splits.val.y.tolist()) == list(range(10))
    assert splits.class_names[0] == "airplane" and splits.class_names[9] == "truck"
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 3, 32)
    assert splits.name == "cifar10" and splits.augmentation == "cifar"


def test_cifar10_pixels_channels_and_normalization(cifar10):
    folder, _, test = cifar10
    splits = load_cifar(folder, num_classes=10)
    for c in range(3):
        channel = splits.train.x[:, c]
        assert channel.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert channel.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    mean = torch.tensor(splits.mean).view(1, 3, 1, 1)
    std = torch.tensor(splits.std).view(1, 3, 1, 1)
    restored = (splits.test.x * std + mean) * 255.0
    # row layout: 1024 red values, then green, then blue, each a row-major 32x32 plane
    expected = torch.from_numpy(test[b"data"].astype(np.float32)).view(-1, 3, 32, 32)
    torch.testing.assert_close(restored, expected, atol=1e-3, rtol=0)
    assert splits.test.y.tolist() == test[b"labels"]


def test_cifar10_split_is_seeded(cifar10):
    folder, _, _ = cifar10
    a, b, c = (load_cifar(folder, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.x, c.val.x)


def test_cifar10_parent_folder_is_accepted(cifar10):
    folder, _, _ = cifar10
    assert len(load_cifar(folder.parent).train) == 90


def test_cifar100_fine_labels(tmp_path):
    train, _ = make_cifar100(tmp_path / "cifar-100-python")
    splits = load_cifar(tmp_path, num_classes=100, val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (270, 30, 100)
    assert splits.num_classes == 100 and splits.class_names[99] == "class99"
    assert splits.name == "cifar100"
    all_labels = torch.cat([splits.train.y, splits.val.y]).sort().values
    assert all_labels.tolist() == sorted(int(v) for v in train["fine_labels"])


def test_missing_file_is_named(cifar10):
    folder, _, _ = cifar10
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar(folder)


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="root"):
        load_cifar(tmp_path / "nowhere")


def test_truncated_pickle_is_named(cifar10):
    folder, _, _ = cifar10
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="test_batch.*not a readable CIFAR python batch"):
        load_cifar(folder)


def test_wrong_row_length_is_named(cifar10):
    folder, batches, _ = cifar10
    bad = {**batches[1], b"data": np.zeros((20, 3071), np.uint8)}
    _write(folder / "data_batch_2", bad)
    with pytest.raises(ValueError, match=r"data_batch_2.*\(N, 3072\).*\(20, 3071\)"):
        load_cifar(folder)


def test_label_out_of_range_is_named(cifar10):
    folder, batches, _ = cifar10
    _write(folder / "data_batch_5", {**batches[4], b"labels": [10] * 20})
    with pytest.raises(ValueError, match=r"data_batch_5: label 10 out of range.*< 10"):
        load_cifar(folder)


def test_label_count_mismatch_is_named(cifar10):
    folder, batches, _ = cifar10
    _write(folder / "data_batch_1", {**batches[0], b"labels": [0] * 19})
    with pytest.raises(ValueError, match="data_batch_1: expected 20 labels"):
        load_cifar(folder)


def test_missing_key_is_named(cifar10):
    folder, _, _ = cifar10
    _write(folder / "batches.meta", {b"num_cases_per_batch": 20})
    with pytest.raises(ValueError, match="batches.meta: missing key 'label_names'"):
        load_cifar(folder)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_foreign_globals_is_refused(cifar10, capsys):
    folder, _, _ = cifar10
    _write(folder / "test_batch", {b"data": _Exploit()})
    with pytest.raises(ValueError, match="test_batch.*refusing to load global (__builtin__|builtins).print"):
        load_cifar(folder)
    assert "pwned" not in capsys.readouterr().out


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        load_cifar(".", num_classes=7)
