"""Vocabulary, PTB / WikiText-2 loaders on small files, and LM batching."""
from __future__ import annotations

import pytest
import torch

from autodropout.data import EOS, UNK, Vocab, batchify, lm_batches, load_ptb, load_wikitext2


def test_vocab_orders_by_count_then_alphabet():
    vocab = Vocab.build([["b", "a", "c"], ["a", "b", "d", "e", "e"]])
    assert vocab.itos == [UNK, EOS, "a", "b", "e", "c", "d"]
    assert vocab.encode(["e", "zebra"]) == [4, vocab.unk_id] and vocab.unk_id == 0
    assert vocab.decode([2, 6]) == ["a", "d"]


def test_vocab_cap_counts_specials_and_ignores_them_in_text():
    vocab = Vocab.build([["<unk>", "<unk>", "<unk>", "x", "y", "y"]], max_size=3)
    assert vocab.itos == [UNK, EOS, "y"]
    assert "x" not in vocab and vocab["x"] == vocab.unk_id


def test_vocab_errors():
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build([["a"]], max_size=1)
    with pytest.raises(ValueError, match="unique"):
        Vocab([UNK, "a", "a"])
    with pytest.raises(ValueError, match="unk"):
        Vocab(["a", "b"])


def _write_files(folder, names, texts):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, texts):
        (folder / name).write_text(text, encoding="utf-8")


PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
WIKI_FILES = ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens")


def test_load_ptb_exact_ids(tmp_path):
    _write_files(tmp_path, PTB_FILES, [" the cat <unk> \n the dog \n", " a cat \n", " the bird \n"])
    corpus = load_ptb(tmp_path)
    # counts: the 2, cat 1, dog 1 -> [<unk>, <eos>, the, cat, dog]
    assert corpus.vocab.itos == [UNK, EOS, "the", "cat", "dog"]
    assert corpus.train.tolist() == [2, 3, 0, 1, 2, 4, 1]
    assert corpus.valid.tolist() == [0, 3, 1]
    assert corpus.test.tolist() == [2, 0, 1]
    assert corpus.train.dtype == torch.long and corpus.name == "ptb"
    assert corpus.python_version is None


def test_load_ptb_vocab_cap(tmp_path):
    _write_files(tmp_path, PTB_FILES, ["a a a b b c\n", "c\n", "b\n"])
    corpus = load_ptb(tmp_path, vocab_size=3)
    assert corpus.vocab.itos == [UNK, EOS, "a"]
    assert corpus.train.tolist() == [2, 2, 2, 0, 0, 0, 1]


def test_load_wikitext2_keeps_blank_lines_as_eos(tmp_path):
    train = " \n = Valkyria Chronicles = \n \n It is a game . \n"
    _write_files(tmp_path, WIKI_FILES, [train, " It is \n", " = = \n"])
    corpus = load_wikitext2(tmp_path)
    eos = corpus.vocab[EOS]
    assert corpus.train.numel() == 4 + 4 + 5  # tokens of two text lines + one <eos> per line
    assert (corpus.train == eos).sum().item() == 4
    assert corpus.vocab.decode(corpus.valid.tolist()) == ["It", "is", EOS]
    assert corpus.name == "wikitext2"


@pytest.mark.parametrize("loader,files", [(load_ptb, PTB_FILES), (load_wikitext2, WIKI_FILES)])
def test_missing_file_is_named(tmp_path, loader, files):
    _write_files(tmp_path, files[:2], ["a b\n", "a\n"])
    with pytest.raises(FileNotFoundError, match=files[2]):
        loader(tmp_path)


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="root"):
        load_ptb(tmp_path / "absent")


def test_empty_file_is_an_error(tmp_path):
    _write_files(tmp_path, PTB_FILES, ["a b\n", " \n\n", "a\n"])
    with pytest.raises(ValueError, match="ptb.valid.txt: contains no tokens"):
        load_ptb(tmp_path)


def test_non_utf8_file_is_an_error(tmp_path):
    _write_files(tmp_path, PTB_FILES, ["a b\n", "a\n", "a\n"])
    (tmp_path / "ptb.test.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match="ptb.test.txt: expected UTF-8"):
        load_ptb(tmp_path)


def test_batchify_shapes_and_layout():
    data = batchify(torch.arange(11), 3)
    assert data.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_batchify_errors():
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(10), 0)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(10), 6)
    with pytest.raises(ValueError, match="ids"):
        batchify(torch.zeros(2, 5, dtype=torch.long), 2)


def test_lm_batches_cover_the_stream_batch_first():
    data = batchify(torch.arange(16), 2)  # rows 0..7 and 8..15
    windows = list(lm_batches(data, bptt=3))
    assert [tuple(x.shape) for x, _ in windows] == [(2, 3), (2, 3), (2, 1)]
    first_x, first_y = windows[0]
    assert first_x.tolist() == [[0, 1, 2], [8, 9, 10]]
    assert first_y.tolist() == [[1, 2, 3], [9, 10, 11]]
    targets = torch.cat([y for _, y in windows], dim=1)
    assert targets.tolist() == [list(range(1, 8)), list(range(9, 16))]
    assert all(x.is_contiguous() and y.is_contiguous() for x, y in windows)


def test_lm_batches_errors():
    with pytest.raises(ValueError, match="bptt"):
        list(lm_batches(torch.zeros(2, 5, dtype=torch.long), 0))
    with pytest.raises(ValueError, match="data"):
        list(lm_batches(torch.zeros(5, dtype=torch.long), 2))
