"""corpus_bleu: the translation metric (reward = BLEU / 100)."""
from __future__ import annotations

import pytest

from autodropout.data import corpus_bleu

REFERENCES = [
    "trois cent douze",
    "mille neuf cent soixante et onze",
    "quatre-vingt-dix-sept mille deux cent un",
    "cinq mille quatre cent trente-deux",
]


def test_identical_corpus_scores_100():
    assert corpus_bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)


def test_garbage_scores_low():
    garbage = ["the cat sat on the mat"] * len(REFERENCES)
    assert corpus_bleu(garbage, REFERENCES) < 1.0


def test_partial_match_scores_in_between():
    hypotheses = REFERENCES[:2] + ["quatre-vingt-dix-sept mille deux cent deux", "cinq"]
    score = corpus_bleu(hypotheses, REFERENCES)
    assert 20.0 < score < 95.0


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(REFERENCES, REFERENCES[:2])
    with pytest.raises(ValueError, match="hypotheses"):
        corpus_bleu([], [])
    with pytest.raises(TypeError, match="references"):
        corpus_bleu(["a"], "a")
    with pytest.raises(ValueError, match="tokenize.*13a"):
        corpus_bleu(REFERENCES, REFERENCES, tokenize="moses")
