"""The offline English corpus from CPython's own documentation: content, split, cache, vocab."""
from __future__ import annotations

import json
import platform
import sys
from collections import Counter
from pathlib import Path

import pytest

import autodropout.data.embedded_corpus as embedded
from autodropout.data import EOS, UNK, build_embedded_corpus, default_cache_dir, load_embedded_corpus


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("autodropout-cache")


@pytest.fixture(scope="module")
def corpus(cache_dir):
    return load_embedded_corpus(vocab_size=10000, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def cache_file(corpus):
    return Path(corpus.meta["cache_path"])


def test_first_load_builds_and_records_the_python_version(corpus, cache_file):
    assert corpus.meta["cache_hit"] is False
    assert corpus.python_version == platform.python_version()
    assert corpus.meta["implementation"] == sys.implementation.name
    assert platform.python_version() in cache_file.name
    stored = json.loads(cache_file.read_text(encoding="utf-8"))
    assert stored["python_version"] == platform.python_version()
    assert stored["format"] == "autodropout.embedded_corpus"


def test_corpus_is_real_english_of_useful_size(corpus):
    sizes = {s: getattr(corpus, s).numel() for s in ("train", "valid", "test")}
    total = sum(sizes.values())
    assert total > 300_000
    # hash split 80 / 10 / 10 over ~17k lines
    assert 0.07 < sizes["valid"] / total < 0.13 and 0.07 < sizes["test"] / total < 0.13
    top = corpus.vocab.itos[2:12]
    assert "the" in top and "of" in top
    assert corpus.name == "embedded"


def test_second_load_reads_the_cache(corpus, cache_dir, monkeypatch):
    def fail():
        raise AssertionError("rebuilt despite a valid cache")

    monkeypatch.setattr(embedded, "build_embedded_corpus", fail)
    again = load_embedded_corpus(vocab_size=10000, cache_dir=cache_dir)
    assert again.meta["cache_hit"] is True
    assert again.train.equal(corpus.train) and again.test.equal(corpus.test)
    assert again.vocab.itos == corpus.vocab.itos


def test_build_is_deterministic_and_matches_the_cache(cache_file):
    stored = json.loads(cache_file.read_text(encoding="utf-8"))
    fresh = build_embedded_corpus()
    for split in ("train", "valid", "test"):
        assert fresh[split] == stored[split]
    assert fresh["modules"] == stored["modules"]


def test_splits_are_disjoint_lowercase_lines(cache_file):
    stored = json.loads(cache_file.read_text(encoding="utf-8"))
    train, valid, test = (set(stored[s]) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    sample = stored["train"][:200]
    assert all(line == line.lower() and "  " not in line and ">>>" not in line for line in sample)


def test_vocab_cap_and_unk(cache_dir, corpus):
    small = load_embedded_corpus(vocab_size=500, cache_dir=cache_dir)
    assert len(small.vocab) == 500
    assert small.vocab.itos[:2] == [UNK, EOS]
    assert small.vocab.itos[2:] == corpus.vocab.itos[2:500]  # same frequency order, cut
    unk_rate = (small.train == small.vocab.unk_id).float().mean().item()
    assert 0.05 < unk_rate < 0.5
    counts = Counter(small.train.tolist())
    frequencies = [counts[i] for i in range(2, 500)]
    assert frequencies == sorted(frequencies, reverse=True)


def test_max_train_tokens(cache_dir, corpus):
    capped = load_embedded_corpus(cache_dir=cache_dir, max_train_tokens=5000)
    assert 4000 < capped.train.numel() <= 5000
    # whole leading lines of the same training text (both vocabularies cover their train words)
    n = capped.train.numel()
    assert capped.vocab.decode(capped.train.tolist()) == corpus.vocab.decode(corpus.train[:n].tolist())
    assert corpus.vocab.itos[corpus.train[n - 1]] == EOS
    assert capped.valid.numel() == corpus.valid.numel()
    with pytest.raises(ValueError, match="max_train_tokens"):
        load_embedded_corpus(cache_dir=cache_dir, max_train_tokens=0)


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, cache_file):
    target = tmp_path / cache_file.name
    target.write_text("{not json", encoding="utf-8")
    with pytest.warns(UserWarning, match="unreadable embedded-corpus cache"):
        rebuilt = load_embedded_corpus(vocab_size=100, cache_dir=tmp_path)
    assert rebuilt.meta["cache_hit"] is False
    assert json.loads(target.read_text(encoding="utf-8"))["python_version"] == platform.python_version()


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTODROPOUT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("AUTODROPOUT_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "autodropout")


def test_module_list_is_sorted_and_importable(corpus):
    assert list(embedded.MODULES) == sorted(embedded.MODULES)
    assert len(corpus.meta["modules"]) >= 0.9 * len(embedded.MODULES)
