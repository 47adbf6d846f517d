"""Atomic writes: whole files only, with the permissions of any new file (0666 minus the umask),
and without touching the process's umask (which other threads' files depend on)."""
import os
import threading

import pytest

from autodropout.core.atomic import atomic_write


@pytest.fixture
def umask():
    """Set the umask for a test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_mode_is_0666_minus_the_umask(tmp_path, umask, mask):
    umask(mask)
    for data in ("text", b"bytes", lambda fh: fh.write(b"stream")):
        path = atomic_write(tmp_path / "out", data)
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert path.read_bytes() == b"stream" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_umask_is_never_changed(tmp_path, monkeypatch):
    def no_umask(mask):
        raise AssertionError("os.umask called: another thread could create a file with mode 0666 meanwhile")

    monkeypatch.setattr(os, "umask", no_umask)
    threads = [threading.Thread(target=atomic_write, args=(tmp_path / f"f{i}", str(i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == [str(i) for i in range(8)]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    atomic_write(tmp_path / "out", "old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "out", fail)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (tmp_path / "out").read_text() == "old"
