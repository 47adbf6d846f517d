"""`autodropout list`: every preset with its task, model, sites and trial time, every regularizer
with its parameters and defaults, without loading any data."""
import inspect

from autodropout import regularizers
from autodropout.commands import catalog
from autodropout.commands.cli import main
from autodropout.runs.experiment import find_experiment, presets
from autodropout.tasks import task_sites


def run(capsys, *args):
    code = main(["list", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(name + " "))


def test_lists_every_preset_with_task_model_sites_and_trial_time(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data folders here
    code, out, err = run(capsys, "presets")
    assert code == 0 and err == "" and "Regularizers" not in out
    for name in presets():
        task = find_experiment(name).task
        line = row(out, name)
        assert f"{task.kind}: {task.dataset}" in line and task_sites(task).model in line
        assert f" {len(task_sites(task).shapes)}: " in line
    assert row(out, "digits_wrn_quick").split()[-5:] == ["8x8,", "4x4,", "2x2", "7.8", "-"]  # cpu, gpu s/trial
    assert "12: 4 at 32x32, 4 at 16x16, 4 at 8x8" in row(out, "cifar10_wrn28_2_search")
    assert "2: T 32 x C 64" in row(out, "lm_transformer_quick")
    assert "    needs data at data/cifar-10-batches-py (not found)" in out
    assert "    needs data at data/ptb (not found)" in out
    assert "benchmarks/trial_time.py" in out and "2-core development machine" in out  # where each figure comes from
    # The trial time of every embedded preset is known; the paper-scale ones say '-'.
    assert set(catalog.TRIAL_SECONDS) == {"digits_wrn_quick", "lm_transformer_quick", "translation_numbers_quick"}
    assert row(out, "ptb_transformer_search").split()[-2:] == ["-", "-"]


def test_columns_are_aligned(capsys):
    _, out, _ = run(capsys, "presets")
    lines = out.splitlines()
    header, rule = lines[1], lines[2]
    starts = [i for i, c in enumerate(rule) if c == "-" and (i == 0 or rule[i - 1] == " ")]
    assert [header[s - 2:s] for s in starts[1:]] == ["  "] * (len(starts) - 1)
    for name in presets():
        line = row(out, name)
        assert all(line[s - 2:s] == "  " for s in starts[1:])


def test_lists_every_regularizer_with_its_parameters_and_defaults(capsys):
    code, out, _ = run(capsys, "regularizers")
    assert code == 0 and "Presets" not in out
    body = out.replace("\n" + " " * 21, " ")  # join the wrapped parameter lines
    for name in regularizers.available():
        line = row(body, name)
        for parameter in inspect.signature(regularizers.info(name).factory).parameters.values():
            if parameter.default is inspect.Parameter.empty:
                assert f"{parameter.name} (required)" in line
            else:
                assert f"{parameter.name}={parameter.default!r}" in line
    assert "p=0.1, block_size=7, per_channel=True," in row(out, "dropblock")
    assert row(out, "conv_pattern").endswith("conv")


def test_both_tables_by_default(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and out.index("Presets") < out.index("Regularizers")


def test_unknown_table_is_one_line(capsys):
    code, out, err = run(capsys, "datasets")
    assert code == 2 and out == ""
    assert err == "autodropout: error: unknown list 'datasets'; choose one of: presets, regularizers, patterns\n"


def test_help_has_examples(capsys):
    code = main(["list", "--help"])
    out = capsys.readouterr().out
    assert code == 0 and "examples:" in out and "autodropout list presets" in out
