"""CIFAR-10 / CIFAR-100 from the official "python version" batch files.

Nothing downloads: get ``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz`` from
https://www.cs.toronto.edu/~kriz/cifar.html, unpack it, and pass the folder. The expected files are

- CIFAR-10, folder ``cifar-10-batches-py``: ``data_batch_1`` ... ``data_batch_5``, ``test_batch``,
  ``batches.meta``;
- CIFAR-100, folder ``cifar-100-python``: ``train``, ``test``, ``meta`` (the 100 fine labels are used).

CIFAR's own format is Python pickle (written by Python 2, hence ``encoding="bytes"``). These files
come from the user, and unpickling can run code, so they are read with an unpickler that only
resolves the few globals a CIFAR batch needs (numpy's array reconstructors); anything else is
refused. Search uses 10% of the training set as validation, as in the AutoDropout paper (Pham &
Le, AAAI 2021, arXiv 2101.01761, Section 4.1).
"""
from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodropout.core.errors import DataError, MissingDataError
from autodropout.data.images import ImageSplit, ImageSplits, normalize_per_channel, stratified_split

__all__ = ["load_cifar"]

_IMAGE_SIZE = 32
_ROW = 3 * _IMAGE_SIZE * _IMAGE_SIZE  # 1024 red, then 1024 green, then 1024 blue, row-major
_FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
_TRAIN_FILES = {10: tuple(f"data_batch_{i}" for i in range(1, 6)), 100: ("train",)}
_TEST_FILE = {10: "test_batch", 100: "test"}
_META = {10: ("batches.meta", b"label_names"), 100: ("meta", b"fine_label_names")}
_LABEL_KEY = {10: b"labels", 100: b"fine_labels"}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # Ask numpy for its reconstructors instead of importing them by module path: the path moved
    # from numpy.core to numpy._core in numpy 2, and files pickled under either must load.
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    frombuffer = np.ndarray((0,), np.uint8).__reduce_ex__(5)[0]
    scalar = np.int64(0).__reduce__()[0]  # labels re-pickled as numpy integers
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol 2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
        allowed[(f"{core}.multiarray", "scalar")] = scalar
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch holds only numpy arrays, "
                "lists, bytes and numbers"
            ) from None


def _load_batch_dict(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise MissingDataError(
            f"{path}: CIFAR file not found; expected the unpacked python-version batches from "
            "https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can fail in many ways (EOF, opcodes, numpy state)
        raise DataError(
            f"{path}: not a readable CIFAR python batch ({type(e).__name__}: {e}); "
            "expected a pickled dict as shipped in the CIFAR python tarball"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    # Python 2 pickles give bytes keys; a file re-pickled under Python 3 may have str keys.
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _field(batch: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in batch:
        found = ", ".join(sorted(k.decode(errors="replace") for k in batch if isinstance(k, bytes)))
        raise DataError(f"{path}: missing key {key.decode()!r} (found: {found or 'none'})")
    return batch[key]


def _read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _load_batch_dict(path)
    data = _field(batch, b"data", path)
    is_array = isinstance(data, np.ndarray)
    if not is_array or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        got = f"{data.dtype} array of shape {data.shape}" if is_array else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {_ROW}), got {got}")
    raw_labels = _field(batch, _LABEL_KEY[num_classes], path)
    try:
        labels = np.asarray(raw_labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: labels must be integers ({e})") from e
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{path}: expected {data.shape[0]} labels (one per row of 'data'), got shape {labels.shape}"
        )
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DataError(
            f"{path}: label {int(bad[0])} out of range; expected 0 <= label < {num_classes}"
        )
    return data, labels


def _read_class_names(path: Path, num_classes: int) -> tuple[str, ...]:
    names = _field(_load_batch_dict(path), _META[num_classes][1], path)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        raise DataError(
            f"{path}: expected {num_classes} class names under {_META[num_classes][1].decode()!r}"
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _resolve_root(root: str | os.PathLike[str], num_classes: int) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingDataError(f"root: CIFAR folder {path} does not exist or is not a directory")
    nested = path / _FOLDERS[num_classes]
    if not (path / _TEST_FILE[num_classes]).exists() and nested.is_dir():
        return nested
    return path


def _to_images(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data).view(-1, 3, _IMAGE_SIZE, _IMAGE_SIZE).float().div_(255.0)


def load_cifar(
    root: str | os.PathLike[str],
    num_classes: int = 10,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> ImageSplits:
    """Load CIFAR-10 or CIFAR-100 from the python batch folder ``root`` (see the module docstring).

    ``root`` may be the batch folder itself or its parent (``cifar-10-batches-py`` /
    ``cifar-100-python`` inside it). ``val_fraction`` of the training set is held out as a
    stratified validation split chosen by ``seed``; ``test`` is the official test batch. Images are
    standardized per channel with training-split statistics. Shapes: ``x`` (N, 3, 32, 32) float32,
    ``y`` (N,) int64. A missing file raises FileNotFoundError, a corrupt one ValueError; both name
    the file and what was expected.
    """
    if num_classes not in _FOLDERS:
        raise ValueError(f"num_classes: expected 10 or 100, got {num_classes!r}")
    folder = _resolve_root(root, num_classes)
    batches = [_read_batch(folder / name, num_classes) for name in _TRAIN_FILES[num_classes]]
    train_data = np.concatenate([d for d, _ in batches])
    train_labels = np.concatenate([y for _, y in batches])
    test_data, test_labels = _read_batch(folder / _TEST_FILE[num_classes], num_classes)
    class_names = _read_class_names(folder / _META[num_classes][0], num_classes)

    train_idx, val_idx, _ = stratified_split(train_labels, val_fraction, 0.0, seed)
    (x_train, x_val, x_test), mean, std = normalize_per_channel(
        _to_images(train_data[train_idx]), _to_images(train_data[val_idx]), _to_images(test_data)
    )
    y_train = torch.from_numpy(train_labels)
    return ImageSplits(
        train=ImageSplit(x_train, y_train[train_idx]),
        val=ImageSplit(x_val, y_train[val_idx]),
        test=ImageSplit(x_test, torch.from_numpy(test_labels)),
        num_classes=num_classes,
        in_channels=3,
        image_size=_IMAGE_SIZE,
        name=f"cifar{num_classes}",
        class_names=class_names,
        mean=mean,
        std=std,
        augmentation="cifar",
    )
