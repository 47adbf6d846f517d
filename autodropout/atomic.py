"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

Every file the project writes for users (pattern JSON, run metadata, tables, pictures, controller
checkpoints, caches) goes through here, so a reader (or a crash) never sees half a file.
Standard library only, so even the pure-Python ``search_spaces`` layer can use it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (text as UTF-8, bytes, or a function writing to a binary file object, e.g.
    ``lambda fh: torch.save(state, fh)``) to ``path`` atomically; the folder must exist.

    The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600, since
    runs, caches and reports are shared between workers and users.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
