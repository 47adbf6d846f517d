"""Every pattern the package ships: loadable by name, with a study's provenance, and made for the
preset it names (its space, site count and site shapes are that preset's), so `transfer NAME --to`
and `show NAME` work on it as on a run's own file."""
from pathlib import Path

import pytest

import autodropout as ad
from autodropout import patterns
from autodropout.commands.cli import main
from autodropout.runs.experiment import find_experiment
from autodropout.tasks import task_sites

#: The package's own folder, read at collection (the fixture keeps a user's override out of the tests).
SHIPPED = sorted(p.stem for p in Path(patterns.__file__).parent.glob("*.json"))


@pytest.fixture(autouse=True)
def package_folder(monkeypatch):
    monkeypatch.delenv(patterns.ENV, raising=False)


def test_the_package_ships_the_embedded_studies_patterns():
    assert {"lm-transformer-lstm", "digits-wrn-lstm"} <= set(patterns.shipped()) and patterns.shipped() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_pattern_fits_the_preset_it_was_studied_on(name, capsys):
    loaded = ad.load_patterns(name)
    study = loaded.source["study"]
    assert study["name"] == name and study["arm"] in ("lstm", "lstm-warm") and study["budget"] >= 1
    assert study["test"]["n"] == len(study["eval_seeds"]) >= 2
    assert {v["reference"] for v in study["versus"]} >= {"none"}
    sites = task_sites(find_experiment(study["experiment"]).task)
    assert loaded.space.kind == sites.space and loaded.space.num_sites == len(sites.shapes)
    assert loaded.site_shapes == tuple(tuple(shape) for shape in sites.shapes)
    assert main(["show", name]) == 0
    assert f"rank 1 of {name}" in capsys.readouterr().out
