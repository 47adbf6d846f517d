"""The one rule for a command's output folder: it is new, or an existing empty folder (standard library only).

``search``, ``study`` and ``transfer`` all write into a folder they create; writing into a folder
that holds anything (another run, a study, a report) would mix two results, so all three refuse
it with the same message, and point at ``--resume`` when the folder is one they can continue.
"""
from __future__ import annotations

from pathlib import Path


def check_new_folder(path: str | Path, error: type[Exception], resumable: str | None = None,
                     what: str = "run") -> Path:
    """``path`` if a new output can be created there (it does not exist, or is an empty folder).

    Otherwise raise ``error`` naming the path; when the folder holds ``resumable`` (e.g.
    ``run.json``), the message says it is a ``what`` to continue with ``--resume``.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        hint = f" (it is a {what}: use --resume)" if resumable and (path / resumable).exists() else ""
        raise error(f"{path}: output exists and is not an empty folder{hint}")
    return path
