"""Whether a tuned run's Tune experiment folder can be continued (no Ray needed)."""
from autodropout.workers.tuned import restorable


def test_restorable_takes_relative_paths(tmp_path, monkeypatch):
    # A study resumed as `--resume studies/x` hands relative paths down; Tune reads those as URIs
    # without a scheme and raised ArrowInvalid (found on a real study's resume).
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "tuner.pkl").write_bytes(b"state")
    (tmp_path / "fresh").mkdir()
    monkeypatch.chdir(tmp_path)
    assert restorable("saved") is True
    assert restorable("fresh") is False
    assert restorable("missing") is False

