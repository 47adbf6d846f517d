"""The trials table read back from trial folders (no Ray): statuses of retried and failed trials."""
import json

from autodropout.experiment import experiment_from_dict
from autodropout.runs import Trial, read_trials
from autodropout.runs.summary import human_size
from autodropout.tasks import Regularization
from tests.tiny import TINY_VISION


def trial_folder(root, index, results, error=False):
    task = experiment_from_dict(TINY_VISION).task  # 2 epochs
    folder = root / f"trial_{index:05d}_id{index}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(Trial(task, Regularization.none(), 0).to_config()))
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
    if error:
        (folder / "error.txt").write_text("Failure # 1 (occurred at ...)\nRuntimeError: boom\n")


def test_statuses_of_done_retried_failed_and_running_trials(tmp_path):
    epoch = lambda e, done=False: {"epoch": e, "reward": 0.5 + e / 10, "accuracy": 0.5 + e / 10, "done": done}  # noqa: E731
    trial_folder(tmp_path, 1, [epoch(1), epoch(2, done=True)])
    trial_folder(tmp_path, 2, [epoch(1), epoch(1), epoch(2, done=True)], error=True)  # failed once, retried, done
    trial_folder(tmp_path, 3, [epoch(1)], error=True)  # failed for good
    trial_folder(tmp_path, 4, [epoch(1)])  # still running when the driver stopped
    records = read_trials(tmp_path, "accuracy")
    assert [(r.index, r.status, r.reward) for r in records] == [
        (1, "done", 0.7), (2, "done", 0.7), (3, "error", None), (4, "incomplete", 0.6)]


def test_human_size():
    assert [human_size(n) for n in (0, 1023, 1536, 14.5 * 2**20, 3 * 2**40)] == [
        "0 B", "1023 B", "1.5 KB", "14.5 MB", "3.0 TB"]
