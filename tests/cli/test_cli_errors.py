"""Bad input: one clear message, exit status 2, nothing half-written."""
import os
import subprocess

import pytest

from autodropout.commands.cli import main
from autodropout.core.config import parse_assignments as parse_params
from autodropout.core.errors import ConfigError
from tests.conftest import PYTHON
from tests.tiny import write_experiment


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_works():
    proc = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("search", "train", "export", "transfer", "show", "list"):
        assert command in proc.stdout
    sub = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", "search", "--help"], capture_output=True, text=True)
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
    proc = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", "search", str(path),
                           "--output", str(tmp_path / "run")],
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
    assert code == 2 and "exists and is not an empty folder" in err
    assert (out / "something").read_text() == "keep me"


def test_resume_with_overrides_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--resume", tmp_path, "--epochs", 3)
    assert code == 2 and "--resume continues a run as configured" in err and "(got --epochs;" in err


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


# -- every subcommand, a table of bad inputs -------------------------------------------------------

#: (arguments, a fragment of the one-line message). ``EXP`` is a tiny experiment file, ``PAT`` a
#: pattern file, ``RUN`` a folder that is not a run, ``FILE`` an existing file, ``DIR`` an existing
#: folder with a file in it; all live outside the working folder whose contents are checked.
BAD_INPUTS = [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # search
    (["search", "EXP", "--trials", "0"], "argument --trials: expected an integer >= 1, got 0"),
    (["search", "EXP", "--trials", "many"], "argument --trials: expected an integer, got 'many'"),
    (["search", "EXP", "--concurrency", "0"], "argument --concurrency: expected an integer >= 1, got 0"),
    (["search", "EXP", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["search", "EXP", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["search", "EXP", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["search", "EXP", "--controller", "genetic"], "argument --controller: invalid choice: 'genetic'"),
    (["search", "EXP", "--output", "FILE"], "output exists and is not an empty folder"),
    (["search", "EXP", "--output", "DIR"], "output exists and is not an empty folder"),
    (["search", "no_such_preset"], "neither an experiment file nor a preset; presets: "),
    (["search", "BADYAML"], "not valid YAML"),
    (["search", "UNKNOWNKEY"], "search.trails: unknown key"),
    (["search", "EXP", "--address", "127.0.0.1:1"], "could not reach the Ray cluster at '127.0.0.1:1'"),
    (["search", "--resume", "RUN"], "not a search run folder"),
    (["search", "--resume", "RUN", "--epochs", "2"], "--resume continues a run as configured"),
    (["search", "--resume", "RUN", "--seed", "3"], "(got --seed;"),
    (["search", "--resume", "RUN", "--trials", "0"], "argument --trials: expected an integer >= 1, got 0"),
    (["search", "EXP", "--resume", "RUN"], "(got an experiment;"),
    # train
    (["train"], "the following arguments are required: experiment"),
    (["train", "EXP", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["train", "EXP", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["train", "EXP", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["train", "EXP", "--pattern", "PAT", "--rank", "0"], "argument --rank: expected an integer >= 1, got 0"),
    (["train", "EXP", "--pattern", "PAT", "--rank", "7"], "no pattern of rank 7"),
    (["train", "EXP", "--rank", "2"], "--rank needs --pattern"),
    (["train", "EXP", "--regularizer", "dropout", "--param", "p=2"], "regularizer 'dropout': p must be a probability"),
    (["train", "EXP", "--regularizer", "dropblock", "--param", "block_size=-1"], "regularizer 'dropblock': block_size"),
    (["train", "EXP", "--regularizer", "dropout", "--param", "q=1"], "regularizer 'dropout' has no parameter 'q'"),
    (["train", "EXP", "--regularizer", "dropout", "--param", "p"], "--param: expected KEY=VALUE, got 'p'"),
    (["train", "EXP", "--param", "p=0.1"], "--param needs --regularizer"),
    (["train", "EXP", "--regularizer", "dropoot"], "unknown regularizer 'dropoot'"),
    (["train", "EXP", "--output", "FILE"], "--output FILE: a file of that name exists"),
    (["train", "EXP", "--output", "DIR"], "--output DIR: a folder of that name exists"),
    (["train", "EXP", "--output", "DIR/missing/out.json"], "the folder DIR/missing does not exist"),
    (["train", "EXP", "--pattern", "MISSING.json"], "MISSING.json: no such file"),
    (["train", "no_such_preset"], "neither an experiment file nor a preset"),
    # export
    (["export", "RUN"], "not a search run folder"),
    (["export", "RUN", "--top", "0"], "argument --top: expected an integer >= 1, got 0"),
    (["export", "RUN", "-o", "FILE"], "--output FILE: a file of that name exists"),
    # transfer
    (["transfer", "PAT", "--to", "EXP", "--seeds", "0"], "argument --seeds: expected an integer >= 1, got 0"),
    (["transfer", "PAT", "--to", "EXP", "--rank", "0"], "argument --rank: expected an integer >= 1, got 0"),
    (["transfer", "PAT", "--to", "EXP", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["transfer", "PAT", "--to", "EXP", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["transfer", "PAT", "--to", "EXP", "--rank", "7"], "no pattern of rank 7"),
    (["transfer", "PAT", "--to", "EXP", "--baselines", "dropout:p=2"], "baseline 'dropout:p=2'"),
    (["transfer", "PAT", "--to", "EXP", "--output", "FILE"], "exists and is not an empty folder"),
    (["transfer", "MISSING.json", "--to", "EXP"], "MISSING.json: no such file"),
    (["transfer", "PAT", "--to", "no_such_preset"], "neither an experiment file nor a preset"),
    (["transfer", "PAT"], "the following arguments are required: --to"),
    # show
    (["show", "MISSING.json"], "MISSING.json: no such file"),
]


@pytest.fixture
def bad_input_world(tmp_path, monkeypatch):
    """The named inputs, and an empty working folder (the current directory) whose contents must not change."""
    from autodropout.search_spaces import ConvLayerPattern, ConvSpace, Pattern, save_patterns

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    layer = ConvLayerPattern(unit="tile", rate=None, size=(2, 2), stride=1, repeat=2, rotate=0, shear_x=0.0,
                             shear_y=0.0, share_c=True, residual=True)
    names = {"EXP": write_experiment(inputs), "PAT": save_patterns(inputs / "p.json", [Pattern("conv", (layer,) * 3)],
                                                                    ConvSpace(3))}
    (inputs / "bad.yaml").write_text("task: [unclosed\n")
    names["BADYAML"] = inputs / "bad.yaml"
    (inputs / "other").mkdir()
    names["UNKNOWNKEY"] = write_experiment(inputs / "other", {"search": {"trails": 3}})
    (inputs / "notrun").mkdir()
    names["RUN"] = inputs / "notrun"
    names["FILE"] = inputs / "existing.txt"
    names["FILE"].write_text("keep me")
    names["DIR"] = inputs / "dir"
    names["DIR"].mkdir()
    (names["DIR"] / "inside").write_text("keep me too")
    names["MISSING.json"] = inputs / "missing.json"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("AUTODROPOUT_CACHE", str(tmp_path / "cache"))
    return names, inputs, work


def tree(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a) or "(none)" for a, _ in BAD_INPUTS])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, bad_input_world, capsys):
    names, inputs, work = bad_input_world
    before_inputs, before_work = tree(inputs), tree(work)

    def resolve(arg):
        for name, path in names.items():
            if arg == name or arg.startswith(name + "/"):
                return str(path) + arg[len(name):]
        return arg

    code = main([resolve(a) for a in argv])
    out, err = capsys.readouterr()
    shown = message
    for name, path in names.items():
        shown = shown.replace(name, str(path))
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("autodropout") and "error: " in err, err
    assert shown in err
    assert "Traceback" not in err
    assert tree(work) == [] and tree(inputs) == before_inputs and before_work == []


def test_a_reader_that_stops_early_gets_no_traceback():
    # `autodropout list | head -1`: the pipe's read end is closed before anything is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert proc.stderr == ""
