"""Number-phrase translation, word tokenization, collate, and the WMT-style SentencePiece loader."""
from __future__ import annotations

import pytest
from num2words import num2words

import autodropout.data.translation as translation
from autodropout.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    collate,
    detokenize_words,
    load_number_translation,
    load_parallel_text,
    tokenize_words,
    with_target_noise,
)


@pytest.fixture(scope="module")
def numbers():
    return load_number_translation(seed=0, max_number=1999, n_train=600, n_val=100, n_test=100)


def test_split_sizes_and_unseen_numbers(numbers):
    split_numbers = numbers.meta["numbers"]
    assert [len(split_numbers[s]) for s in ("train", "val", "test")] == [600, 100, 100]
    train = set(split_numbers["train"])
    assert not train & set(split_numbers["test"]) and not train & set(split_numbers["val"])
    assert not set(split_numbers["val"]) & set(split_numbers["test"])
    assert all(0 <= n <= 1999 for s in split_numbers.values() for n in s)
    assert (len(numbers.train), len(numbers.val), len(numbers.test)) == (600, 100, 100)


def test_texts_are_num2words_renderings(numbers):
    for n, en, fr in zip(numbers.meta["numbers"]["test"], numbers.test.src_text, numbers.test.tgt_text):
        assert en == num2words(n, lang="en") and fr == num2words(n, lang="fr")
    assert numbers.name == "numbers-en-fr" and (numbers.src_lang, numbers.tgt_lang) == ("en", "fr")


def test_same_seed_same_numbers_other_seed_differs(numbers):
    again = load_number_translation(seed=0, max_number=1999, n_train=600, n_val=100, n_test=100)
    other = load_number_translation(seed=1, max_number=1999, n_train=600, n_val=100, n_test=100)
    assert again.meta["numbers"] == numbers.meta["numbers"]
    assert other.meta["numbers"]["test"] != numbers.meta["numbers"]["test"]


def test_word_tokenization_of_hyphens_and_commas():
    assert tokenize_words("quatre-vingt-dix-sept") == ["quatre", "-", "vingt", "-", "dix", "-", "sept"]
    assert tokenize_words("nine thousand, nine hundred and ninety-nine") == [
        "nine", "thousand", ",", "nine", "hundred", "and", "ninety", "-", "nine"]
    assert detokenize_words(["trois", "cent", "douze"]) == "trois cent douze"


def test_tokenization_round_trips_every_phrase(numbers):
    for split in (numbers.train, numbers.val, numbers.test):
        for text in split.src_text + split.tgt_text:
            assert detokenize_words(tokenize_words(text)) == text


def test_vocab_specials_and_encoding(numbers):
    for tok in (numbers.src_tokenizer, numbers.tgt_tokenizer):
        assert tok.vocab.itos[:4] == list(SPECIALS)
        assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    src_ids, tgt_ids = numbers.train[0]
    assert src_ids[-1] == EOS_ID and BOS_ID not in src_ids
    assert tgt_ids[0] == BOS_ID and tgt_ids[-1] == EOS_ID
    assert numbers.tgt_tokenizer.decode(tgt_ids) == numbers.train.tgt_text[0]
    assert numbers.src_tokenizer.decode(src_ids) == numbers.train.src_text[0]


def test_decode_stops_at_eos_and_skips_padding(numbers):
    tok = numbers.tgt_tokenizer
    ids = tok.encode("vingt-deux", bos=True)
    assert tok.decode(ids + [PAD_ID, PAD_ID]) == "vingt-deux"
    assert tok.decode(ids[:-1] + [EOS_ID] + tok.encode("trois")) == "vingt-deux"
    assert tok.encode("vingt-deux quokka")[-2] == UNK_ID
    assert tok.decode(tok.encode("vingt quokka")) == "vingt <unk>"


def test_collate_pads_with_zero():
    src, tgt = collate([([5, 2], [1, 6, 7, 2]), ([5, 6, 7, 2], [1, 2])])
    assert src.tolist() == [[5, 2, 0, 0], [5, 6, 7, 2]]
    assert tgt.tolist() == [[1, 6, 7, 2], [1, 2, 0, 0]]
    assert src.dtype == tgt.dtype and str(src.dtype) == "torch.int64"


def test_collate_on_real_pairs(numbers):
    batch = [numbers.val[i] for i in range(8)]
    src, tgt = collate(batch)
    assert src.shape == (8, max(len(s) for s, _ in batch))
    assert tgt.shape == (8, max(len(t) for _, t in batch))
    for row, (s, t) in enumerate(batch):
        assert src[row, : len(s)].tolist() == s and (src[row, len(s):] == PAD_ID).all()
        assert tgt[row, : len(t)].tolist() == t and (tgt[row, len(t):] == PAD_ID).all()


def test_collate_errors():
    with pytest.raises(ValueError, match="pairs"):
        collate([])
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        collate([([4, 2], [1, 2]), ([], [1, 2])])


def test_number_task_errors_name_the_parameter():
    with pytest.raises(ValueError, match="max_number=99 allows only 100"):
        load_number_translation(max_number=99, n_train=90, n_val=10, n_test=10)
    with pytest.raises(ValueError, match="n_train"):
        load_number_translation(n_train=0)
    with pytest.raises(ValueError, match="tgt_lang"):
        load_number_translation(max_number=20, n_train=5, n_val=1, n_test=1, tgt_lang="klingon")


def test_target_noise_gives_exactly_that_fraction_of_pairs_another_pairs_target(numbers):
    noisy = with_target_noise(numbers, 0.3, seed=5)
    train, clean = noisy.train, numbers.train
    changed = [i for i in range(len(clean)) if train.tgt_text[i] != clean.tgt_text[i]]
    assert len(changed) == round(0.3 * len(clean))  # the numbers are distinct, so no pair keeps its own target
    # Sources stay; a changed pair carries the text and ids of one other training pair together.
    assert train.src_text == clean.src_text and train.src_ids == clean.src_ids
    donors = {text: i for i, text in enumerate(clean.tgt_text)}
    for i in changed:
        j = donors[train.tgt_text[i]]
        assert j != i and train.tgt_ids[i] == clean.tgt_ids[j]
    # Donors are spread over the training set, not a few pairs copied many times.
    assert len({train.tgt_text[i] for i in changed}) > 0.7 * len(changed)
    assert noisy.val is numbers.val and noisy.test is numbers.test
    assert noisy.src_tokenizer is numbers.src_tokenizer and noisy.tgt_tokenizer is numbers.tgt_tokenizer
    assert with_target_noise(numbers, 0.3, seed=5).train == train
    assert with_target_noise(numbers, 0.3, seed=6).train != train
    assert with_target_noise(numbers, 0.0, seed=5) is numbers


def _write_parallel(folder, pairs_per_split, skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, count in pairs_per_split.items():
        numbers = range(start, start + count)
        start += count
        for lang in ("en", "fr"):
            if f"{split}.{lang}" in skip:
                continue
            lines = [num2words(n * 53 + 3, lang=lang) + " ." for n in numbers]
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")


SIZES = {"train": 150, "valid": 10, "test": 10}


@pytest.fixture(scope="module")
def parallel_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wmt")
    _write_parallel(root, SIZES)
    return root


@pytest.fixture(scope="module")
def parallel(parallel_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("spm-cache")
    return load_parallel_text(parallel_root, vocab_size=80, cache_dir=cache), cache


def test_parallel_text_joint_sentencepiece(parallel):
    data, cache = parallel
    assert data.src_tokenizer is data.tgt_tokenizer
    tok = data.src_tokenizer
    assert 30 < len(tok) <= 80
    assert [tok.processor.id_to_piece(i) for i in range(4)] == list(SPECIALS)
    assert (len(data.train), len(data.val), len(data.test)) == (150, 10, 10)
    src_ids, tgt_ids = data.train[3]
    assert src_ids[-1] == EOS_ID and tgt_ids[0] == BOS_ID and tgt_ids[-1] == EOS_ID
    for text in data.test.tgt_text + data.test.src_text:
        assert tok.decode(tok.encode(text, bos=True)) == text
    model_file = data.meta["model_files"][0]
    assert model_file.startswith(str(cache / "sentencepiece"))


def test_parallel_text_model_is_cached(parallel_root, parallel, monkeypatch):
    data, cache = parallel

    def no_training(*args, **kwargs):
        raise AssertionError("retrained despite a cached model")

    monkeypatch.setattr(translation.SentencePieceTokenizer, "train", no_training)
    again = load_parallel_text(parallel_root, vocab_size=80, cache_dir=cache)
    assert again.meta["model_files"] == data.meta["model_files"]
    assert again.train.src_ids == data.train.src_ids


def test_parallel_text_per_side_models(parallel_root, tmp_path):
    data = load_parallel_text(parallel_root, vocab_size=60, joint=False, cache_dir=tmp_path,
                              max_train_pairs=100)
    assert data.src_tokenizer is not data.tgt_tokenizer
    assert len(data.meta["model_files"]) == 2 and len(data.train) == 100
    assert data.tgt_tokenizer.decode(data.val.tgt_ids[0]) == data.val.tgt_text[0]


def test_line_count_mismatch_names_both_files(tmp_path):
    _write_parallel(tmp_path, SIZES)
    (tmp_path / "valid.fr").write_text("Un .\nDeux .\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"valid\.en has 10 lines but .*valid\.fr has 2"):
        load_parallel_text(tmp_path, vocab_size=60, cache_dir=tmp_path / "cache")


def test_missing_parallel_file_is_named(tmp_path):
    _write_parallel(tmp_path, SIZES, skip=("test.fr",))
    with pytest.raises(FileNotFoundError, match=r"test\.fr"):
        load_parallel_text(tmp_path, vocab_size=60, cache_dir=tmp_path / "cache")


def test_too_small_vocab_is_a_clear_error(parallel_root, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        load_parallel_text(parallel_root, vocab_size=10, cache_dir=tmp_path)
