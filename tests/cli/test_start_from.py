"""``autodropout search --start-from SPEC``: bad specs are one line naming the option, exit status 2."""
import pytest

from autodropout.commands.cli import main
from tests.tiny import write_experiment


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("spec, message", [
    ("dropuot:p=0.1", "unknown regularizer 'dropuot'; registered: "),
    ("dropout:p=2", "regularizer 'dropout': "),
    ("dropout:rate=0.1", "regularizer 'dropout' has no parameter 'rate'"),
    ("dropout:p", "expected NAME:KEY=VALUE,KEY=VALUE, got 'p'"),
    ("none", "'none' is no start point"),
])
def test_a_bad_spec_on_the_command_line_names_the_option(tmp_path, capsys, spec, message):
    code, err = run_cli(capsys, "search", write_experiment(tmp_path), "--start-from", spec,
                        "--output", tmp_path / "run")
    assert code == 2 and err.startswith("autodropout search: error: argument --start-from: ") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_bad_spec_in_the_experiment_file_names_the_key(tmp_path, capsys):
    path = write_experiment(tmp_path, {"search": {"start_from": "dropuot:p=0.1"}})
    code, err = run_cli(capsys, "search", path, "--output", tmp_path / "run")
    assert code == 2 and "search.start_from: 'dropuot:p=0.1': unknown regularizer 'dropuot'" in err
    assert str(path) in err and not (tmp_path / "run").exists()


def test_a_resumed_search_keeps_its_start_point(tmp_path, capsys):
    code, err = run_cli(capsys, "search", "--resume", tmp_path, "--start-from", "dropout:p=0.1")
    assert code == 2 and "--resume continues a run as configured" in err and "--start-from" in err


def test_a_missing_pattern_file_fails_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # The file is looked for where the task is known, once the search starts: stop right after that.
    import autodropout.tune.search as run

    monkeypatch.setattr(run, "connect", lambda address: None)
    monkeypatch.setattr(run, "check_resources", lambda *a: None)
    code, err = run_cli(capsys, "search", write_experiment(tmp_path), "--start-from", tmp_path / "nope.json",
                        "--output", tmp_path / "run")
    assert code == 2 and f"start_from '{tmp_path / 'nope.json'}': " in err and "no such" in err
    assert not (tmp_path / "run").exists()
