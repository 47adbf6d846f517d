"""A run folder can be moved or copied: run.json records its Tune experiment relative to it (unless
search.storage_path put the experiment elsewhere), so export and ``--resume`` of the copy read and
extend the copy; run.json files of version 2 (absolute paths) read as before."""
import json
import shutil

import pytest

import autodropout as ad
from autodropout.runs import RunDir
from autodropout.runs.experiment import experiment_from_dict
from autodropout.tasks import build_task
from tests.tiny import TINY_VISION, write_experiment
from tests.tune.test_search_e2e import autodropout, read_table


def new_run(path, search=None):
    experiment = experiment_from_dict({**TINY_VISION, "search": {**TINY_VISION["search"], **(search or {})}})
    return RunDir.create(path, experiment, build_task(experiment.task).search_space(), "accuracy", 0)


def test_the_experiment_is_recorded_relative_to_the_run_folder(tmp_path):
    run = new_run(tmp_path / "run")
    assert json.loads(run.info_file.read_text())["experiment_dir"] == "trials"
    assert run.experiment_dir == (tmp_path / "run").resolve() / "trials"
    shutil.copytree(run.path, tmp_path / "elsewhere" / "copy")
    assert RunDir.open(tmp_path / "elsewhere" / "copy").experiment_dir == (tmp_path / "elsewhere" / "copy" / "trials")


def test_a_storage_path_is_recorded_as_the_absolute_truth(tmp_path):
    run = new_run(tmp_path / "run", {"storage_path": str(tmp_path / "shared")})
    assert json.loads(run.info_file.read_text())["experiment_dir"] == str(tmp_path / "shared" / "trials")
    shutil.copytree(run.path, tmp_path / "copy")
    assert RunDir.open(tmp_path / "copy").experiment_dir == tmp_path / "shared" / "trials"


def test_a_version_2_run_json_reads_as_before(tmp_path):
    run = new_run(tmp_path / "run")
    info = json.loads(run.info_file.read_text())
    run.info_file.write_text(json.dumps({**info, "version": 2, "experiment_dir": str(tmp_path / "old" / "trials")}))
    assert RunDir.open(run.path).experiment_dir == tmp_path / "old" / "trials"


@pytest.mark.slow
def test_export_and_resume_of_a_copied_run_folder_use_the_copy(tmp_path, cli_env):
    experiment = write_experiment(tmp_path, {"search": {"trials": 2}})
    autodropout("search", experiment, "--output", tmp_path / "run", env=cli_env)
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(tmp_path / "run", copy)
    moved = (tmp_path / "run").rename(tmp_path / "moved")  # the original place is gone
    (copy / "best_patterns.json").unlink()
    (copy / "trials.csv").unlink()

    autodropout("export", copy, env=cli_env)
    assert read_table(copy) == read_table(moved)
    exported, original = (ad.load_patterns(p / "best_patterns.json") for p in (copy, moved))
    assert [(p.trial_id, p.reward, p.pattern) for p in exported.patterns] == [
        (p.trial_id, p.reward, p.pattern) for p in original.patterns]
    assert {k: v for k, v in exported.source.items() if k != "created"} == {
        k: v for k, v in original.source.items() if k != "created"}

    extended = autodropout("search", "--resume", copy, "--trials", 3, env=cli_env)
    assert "search finished: 3 trials (0 failed)" in extended.stdout
    table = read_table(copy)
    assert [int(r["index"]) for r in table] == [1, 2, 3] and all(r["status"] == "done" for r in table)
    assert len(list((copy / "trials").glob("trial_*"))) == 3
    assert len(list((moved / "trials").glob("trial_*"))) == 2 and not (tmp_path / "run").exists()
