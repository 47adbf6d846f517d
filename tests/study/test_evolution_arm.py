"""A study with a regularized evolution arm (any registered searcher can be one): compared with random
search started the same way, and named in the report by its registry entry. No Ray (tests/study/fake.py)."""
import pytest

from autodropout.study import StudyDir, rebuild_report
from autodropout.study.results import summarize_study
from tests.study.fake import fake_study


def test_an_evolution_arm_is_compared_with_random_search_and_described_in_the_report(tmp_path):
    study = fake_study(tmp_path, evolution=True)
    assert study.plan.arms == ("lstm", "random", "evolution")
    assert StudyDir.open(study.path).plan.arms == study.plan.arms  # study.json reads back with the arm
    (main,) = summarize_study(study)
    pairs = {(c.arm, c.reference): c.diff for c in main.comparisons}
    # evolution per seed 0.88, 0.885, 0.875; random 0.86, 0.84, 0.85 -> +0.02, +0.045, +0.025
    assert pairs["evolution", "random"].mean == pytest.approx(0.03)
    assert ("evolution", "lstm") not in pairs and ("lstm", "random") in pairs  # each searcher vs random only
    assert {("evolution", "none"), ("evolution", "dropout")} <= set(pairs)
    rebuild_report(study.path)
    text = (study.path / "report.md").read_text()
    assert "evolution (regularized evolution (Real, Aggarwal, Huang & Le, AAAI 2019), from scratch)" in text
    assert "| evolution | random | +0.0300 ±" in text
