"""The output-folder rule shared by search, study and transfer (autodropout.core.folders)."""
import pytest

from autodropout.core.folders import check_new_folder


class Refused(Exception):
    pass


def test_a_missing_or_empty_folder_is_new(tmp_path):
    assert check_new_folder(tmp_path / "missing", Refused) == tmp_path / "missing"
    (tmp_path / "empty").mkdir()
    assert check_new_folder(str(tmp_path / "empty"), Refused) == tmp_path / "empty"


def test_a_file_or_a_folder_with_anything_is_refused_with_the_callers_error(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "note").write_text("keep me")
    for path in (tmp_path / "file", tmp_path / "full"):
        with pytest.raises(Refused, match=r"output exists and is not an empty folder$"):
            check_new_folder(path, Refused, resumable="run.json")
    assert (tmp_path / "full" / "note").read_text() == "keep me"


def test_a_resumable_folder_points_at_resume(tmp_path):
    (tmp_path / "study.json").write_text("{}")
    with pytest.raises(Refused, match=r"\(it is a study: use --resume\)"):
        check_new_folder(tmp_path, Refused, resumable="study.json", what="study")
