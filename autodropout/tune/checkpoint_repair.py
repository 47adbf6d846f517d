"""Make a resumed search restore from checkpoints that still exist.

Ray Tune deletes a trial's superseded checkpoint as soon as it registers the next one
(``CheckpointConfig(num_to_keep=1)``), but the experiment state that names each trial's checkpoint
reaches storage only later (it is written at the end of the controller step and uploaded in the
background). A driver killed in between leaves a state that names a deleted checkpoint, and the
restored trial fails with "Could not recover from checkpoint as it does not exist on storage
anymore" (ray-project/ray#27790; still so in Ray 2.60). Keeping every checkpoint would avoid it at
the cost of one full training state per epoch per trial, so instead, on the first controller step
of a run, each trial about to resume whose named checkpoint is missing gets the next checkpoint
that exists copied into that name. Ray deletes a checkpoint only after a newer one is registered,
so the oldest one newer than the missing name is complete: it is the checkpoint Ray would have named
had its state reached storage. The trainable resumes from the epoch stored inside the checkpoint,
so no epoch is trained twice or skipped.
"""
from __future__ import annotations

import logging
import posixpath
import re
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)

_CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)$")


class CheckpointRepair(Callback):
    """A Tune callback; it acts once, before the first trial of a (resumed) run starts."""

    def __init__(self) -> None:
        self.checked = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.checked:
            return
        self.checked = True
        for trial in trials:
            if trial.status in (Trial.TERMINATED, Trial.ERROR) or trial.checkpoint is None:
                continue
            replacement = repair_checkpoint(trial.checkpoint.filesystem, trial.checkpoint.path)
            if replacement:
                logger.warning("trial %s: its recorded checkpoint %s was deleted before the driver stopped; "
                               "resuming from %s instead", trial.trial_id, trial.checkpoint.path, replacement)


def repair_checkpoint(fs: pyarrow.fs.FileSystem, path: str) -> str | None:
    """If the checkpoint folder ``path`` is missing, copy the oldest newer sibling checkpoint into it.

    Returns the path copied from, or ``None`` when nothing was done (the checkpoint exists, or no
    newer one does: then Ray's own error stands).
    """
    path = path.rstrip("/")
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        return None
    match = _CHECKPOINT_DIR.search(posixpath.basename(path))
    if match is None:
        return None
    wanted = int(match.group(1))
    parent = posixpath.dirname(path)
    newer = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(parent, allow_not_found=True)):
        found = _CHECKPOINT_DIR.search(info.base_name)
        if info.type == pyarrow.fs.FileType.Directory and found and int(found.group(1)) > wanted:
            newer.append((int(found.group(1)), info.path))
    if not newer:
        return None
    source = min(newer)[1]
    # Copy into a temporary name, then rename, so a second crash cannot leave half a checkpoint
    # under the name Ray will restore from.
    partial = f"{path}.partial"
    fs.delete_dir_contents(partial, missing_dir_ok=True)
    fs.create_dir(partial)
    pyarrow.fs.copy_files(source, partial, source_filesystem=fs, destination_filesystem=fs)
    fs.move(partial, path)
    return source
