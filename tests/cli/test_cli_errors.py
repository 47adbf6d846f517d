"""Bad input: one clear message, exit status 2, nothing half-written."""
import subprocess

import pytest

from autodropout.cli import main
from autodropout.config import parse_assignments as parse_params
from autodropout.errors import ConfigError
from tests.conftest import PYTHON
from tests.tiny import write_experiment


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_works():
    proc = subprocess.run([PYTHON, "-m", "autodropout.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("search", "train", "export", "transfer", "show", "list"):
        assert command in proc.stdout
    sub = subprocess.run([PYTHON, "-m", "autodropout.cli", "search", "--help"], capture_output=True, text=True)
    assert sub.returncode == 0 and "examples:" in sub.stdout and "--resume" in sub.stdout


def test_unknown_key_in_experiment(tmp_path, capsys):
    path = write_experiment(tmp_path, {"search": {"trails": 3}})
    code, _, err = run_cli(capsys, "search", path, "--output", tmp_path / "run")
    assert code == 2
    assert "search.trails: unknown key" in err and str(path) in err
    assert not (tmp_path / "run").exists()


def test_bad_value_names_the_key(tmp_path, capsys):
    path = write_experiment(tmp_path, {"task": {"kind": "vision", "depth": 11}})
    code, _, err = run_cli(capsys, "search", path, "--output", tmp_path / "run")
    assert code == 2 and "task.depth" in err and not (tmp_path / "run").exists()


def test_not_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("task: [unclosed\n")
    code, _, err = run_cli(capsys, "train", path)
    assert code == 2 and "not valid YAML" in err


def test_unknown_preset_lists_presets(capsys):
    code, _, err = run_cli(capsys, "train", "no_such_preset")
    assert code == 2 and "digits_wrn_quick" in err


def test_unreachable_cluster_address(tmp_path, capsys):
    path = write_experiment(tmp_path)
    code, _, err = run_cli(capsys, "search", path, "--address", "127.0.0.1:1", "--output", tmp_path / "run")
    assert code == 2 and "could not reach the Ray cluster at '127.0.0.1:1'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_impossible_resources(tmp_path, cli_env):
    # In a subprocess: this one starts Ray, which must not live on in the test process.
    path = write_experiment(tmp_path, {"search": {"cpus_per_trial": 512}})
    proc = subprocess.run([PYTHON, "-m", "autodropout.cli", "search", str(path), "--output", str(tmp_path / "run")],
                          env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "search.cpus_per_trial=512.0 but the cluster has" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_resume_and_export_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    code, _, err = run_cli(capsys, "search", "--resume", tmp_path / "x")
    assert code == 2 and "not a search run folder" in err
    code, _, err = run_cli(capsys, "export", tmp_path / "x")
    assert code == 2 and "not a search run folder" in err


def test_existing_output_folder_is_refused(tmp_path, capsys):
    path = write_experiment(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("keep me")
    code, _, err = run_cli(capsys, "search", path, "--output", out)
    assert code == 2 and "exists and is not empty" in err
    assert (out / "something").read_text() == "keep me"


def test_resume_with_overrides_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--resume", tmp_path, "--trials", 3)
    assert code == 2 and "--resume continues a run as configured" in err


def test_param_parsing():
    assert parse_params(["p=0.1", "per_channel=false", "name=abc", "sizes=[1,2]"]) == {
        "p": 0.1, "per_channel": False, "name": "abc", "sizes": [1, 2]}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_params(["p"])


def test_train_unknown_regularizer_lists_names(capsys):
    code, _, err = run_cli(capsys, "train", "digits_wrn_quick", "--regularizer", "dropoot")
    assert code == 2 and "unknown regularizer 'dropoot'" in err and "dropblock" in err


def test_param_without_regularizer(capsys):
    code, _, err = run_cli(capsys, "train", "digits_wrn_quick", "--param", "p=0.1")
    assert code == 2 and "--param needs --regularizer" in err
