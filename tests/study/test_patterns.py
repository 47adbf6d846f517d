"""Shipped patterns by name, and the ``source.study`` provenance of pattern files."""
import json
from pathlib import Path

import pytest

import autodropout as ad
from autodropout import patterns
from autodropout.search_spaces import ConvSpace, PatternFormatError

STUDY = {"arm": "lstm", "budget": 16, "eval_seeds": [1000, 1001], "metric": "accuracy", "mode": "max",
         "test": {"n": 2, "mean": 0.9, "se": 0.01, "ci95": [0.77, 1.03]}}


def write(folder, name, study=STUDY):
    space = ConvSpace(num_sites=3)
    return ad.save_patterns(folder / f"{name}.json", [space.decode(space.sample(0))], space,
                            source={"experiment": "x", "study": study})


def test_names_resolve_to_the_patterns_folder_and_paths_stay_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(patterns.ENV, str(tmp_path / "shipped"))
    (tmp_path / "shipped").mkdir()
    write(tmp_path / "shipped", "digits-wrn-lstm")
    assert patterns.shipped() == ["digits-wrn-lstm"]
    assert patterns.resolve("digits-wrn-lstm") == tmp_path / "shipped" / "digits-wrn-lstm.json"
    assert ad.load_patterns("digits-wrn-lstm").source["study"]["arm"] == "lstm"
    local = write(tmp_path, "local")
    assert patterns.resolve(local) == local and patterns.resolve("other/x") == Path("other/x")
    assert not patterns.is_path("digits-wrn-lstm") and patterns.is_path("file.json") and patterns.is_path("a/b")
    with pytest.raises(patterns.PatternNameError, match="shipped patterns: digits-wrn-lstm"):
        patterns.resolve("nope")


def test_the_package_folder_is_the_default(monkeypatch):
    monkeypatch.delenv(patterns.ENV, raising=False)
    assert patterns.patterns_dir() == Path(patterns.__file__).parent


@pytest.mark.parametrize("name", ["UPPER", "with space", "x.json", "-lead", "a" * 65, ""])
def test_bad_names(name):
    with pytest.raises(PatternFormatError, match="pattern name"):
        patterns.check_name(name)


def test_study_provenance_round_trips(tmp_path):
    path = write(tmp_path, "p")
    assert json.loads(path.read_text())["source"]["study"] == STUDY
    assert ad.load_patterns(path).source["study"] == STUDY


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("test"), "missing field 'test'"),
    (lambda s: s.update(secret=1), "unknown field 'secret'"),
    (lambda s: s.update(mode="up"), "field 'mode': expected 'max' or 'min'"),
    (lambda s: s.update(test={"mean": "high"}), "field 'test': expected an object with a numeric 'mean'"),
])
def test_bad_study_provenance_is_refused_on_write_and_read(tmp_path, change, message):
    study = json.loads(json.dumps(STUDY))
    change(study)
    with pytest.raises(ad.errors.PatternError, match=message):
        write(tmp_path, "bad", study)
    document = json.loads(write(tmp_path, "good").read_text())
    document["source"]["study"] = study
    (tmp_path / "edited.json").write_text(json.dumps(document))
    with pytest.raises(PatternFormatError, match="source: field 'study': " + message.split(":")[0]):
        ad.load_patterns(tmp_path / "edited.json")
