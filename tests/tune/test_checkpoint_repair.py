"""Resuming after Ray deleted the checkpoint its saved experiment state still names."""
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
from ray import tune

from autodropout.tune.checkpoint_repair import CheckpointRepair, repair_checkpoint

FS = pyarrow.fs.LocalFileSystem()


def make_checkpoint(trial_dir: Path, index: int, content: str) -> Path:
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "state.pt").write_text(content)
    return folder


def test_a_missing_checkpoint_gets_the_oldest_newer_one(tmp_path):
    make_checkpoint(tmp_path, 2, "epoch 3")
    make_checkpoint(tmp_path, 4, "epoch 5, maybe half uploaded")
    missing = tmp_path / "checkpoint_000001"
    assert repair_checkpoint(FS, str(missing)) == str(tmp_path / "checkpoint_000002")
    assert (missing / "state.pt").read_text() == "epoch 3"
    assert (tmp_path / "checkpoint_000002" / "state.pt").read_text() == "epoch 3"  # a copy, not a move
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000001", "checkpoint_000002",
                                                          "checkpoint_000004"]


def test_an_existing_checkpoint_is_left_alone(tmp_path):
    present = make_checkpoint(tmp_path, 1, "epoch 2")
    make_checkpoint(tmp_path, 2, "epoch 3")
    assert repair_checkpoint(FS, str(present)) is None
    assert (present / "state.pt").read_text() == "epoch 2"


def test_without_a_newer_checkpoint_nothing_is_made(tmp_path):
    make_checkpoint(tmp_path, 0, "epoch 1")
    (tmp_path / "checkpoint_000003").write_text("a file, not a checkpoint folder")
    assert repair_checkpoint(FS, str(tmp_path / "checkpoint_000002")) is None
    assert repair_checkpoint(FS, str(tmp_path / "elsewhere" / "checkpoint_000000")) is None
    assert repair_checkpoint(FS, str(tmp_path / "not_a_checkpoint")) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000000", "checkpoint_000003"]


def test_a_copy_cut_by_an_earlier_crash_is_redone(tmp_path):
    make_checkpoint(tmp_path, 1, "epoch 2")
    partial = tmp_path / "checkpoint_000000.partial"
    partial.mkdir()
    (partial / "state.pt").write_text("ep")
    assert repair_checkpoint(FS, str(tmp_path / "checkpoint_000000")) is not None
    assert (tmp_path / "checkpoint_000000" / "state.pt").read_text() == "epoch 2"
    assert not partial.exists()


def test_the_callback_repairs_trials_about_to_resume_once(tmp_path):
    def trial(name: str, status: str, index: int | None) -> SimpleNamespace:
        folder = tmp_path / name
        make_checkpoint(folder, 1, f"{name} epoch 2")
        checkpoint = None if index is None else tune.Checkpoint(str(folder / f"checkpoint_{index:06d}"))
        return SimpleNamespace(trial_id=name, status=status, checkpoint=checkpoint)

    trials = [trial("pending", "PENDING", 0), trial("finished", "TERMINATED", 0), trial("errored", "ERROR", 0),
              trial("fresh", "PENDING", None)]
    callback = CheckpointRepair()
    callback.on_step_begin(iteration=0, trials=trials)
    assert (tmp_path / "pending" / "checkpoint_000000" / "state.pt").read_text() == "pending epoch 2"
    # Ended trials are never restored by a resumed search: their folders stay as they were.
    assert not (tmp_path / "finished" / "checkpoint_000000").exists()
    assert not (tmp_path / "errored" / "checkpoint_000000").exists()

    (tmp_path / "pending" / "checkpoint_000000" / "state.pt").unlink()
    (tmp_path / "pending" / "checkpoint_000000").rmdir()
    callback.on_step_begin(iteration=1, trials=trials)  # only the first step of a run looks
    assert not (tmp_path / "pending" / "checkpoint_000000").exists()
