"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

Every file the project writes for users (pattern JSON, run metadata, tables, pictures, controller
checkpoints, caches) goes through here, so a reader (or a crash) never sees half a file.
Standard library only, so even the pure-Python ``search_spaces`` layer can use it.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: O_EXCL: never open a file that exists (a name taken, or a link planted there); O_BINARY: Windows.
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (text as UTF-8, bytes, or a function writing to a binary file object, e.g.
    ``lambda fh: torch.save(state, fh)``) to ``path`` atomically; the folder must exist.

    The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600, since
    runs, caches and reports are shared between workers and users.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, unique temp file next to ``path``, opened for writing with mode 0666: the kernel applies
    the process's umask itself. (Reading the umask means setting it and setting it back, which would
    let another thread create a file with the wrong mode in between.)"""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue  # 1 in 4 billion: draw another name
