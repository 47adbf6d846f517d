"""Translation data: English -> French number phrases offline, WMT-style parallel text from files.

AutoDropout (Pham & Le, AAAI 2021, arXiv 2101.01761) transfers the pattern found on Penn Treebank
to WMT'14 English-French. Offline, the same kind of task is rendered by num2words: "three hundred
and twelve" -> "trois cent douze". It has real structure (French "quatre-vingt-dix-sept" is
97, word order and conjunctions differ from English) yet trains in minutes on a CPU.

Both loaders return a :class:`TranslationData`. Every tokenizer uses the same special ids,
``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, so :func:`collate` pads with 0 for
either. Encoded source sentences end with ``<eos>``; encoded targets are ``<bos> ... <eos>``, so a
decoder reads ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodropout.core.checks import is_int
from autodropout.core.errors import DataError, MissingDataError
from autodropout.data.embedded_corpus import default_cache_dir
from autodropout.data.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    detokenize_words,
    tokenize_words,
)

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIALS",
    "UNK_ID",
    "ParallelSplit",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TranslationData",
    "WordTokenizer",
    "collate",
    "detokenize_words",
    "load_number_translation",
    "load_parallel_text",
    "tokenize_words",
    "with_target_noise",
]

def _check_count(name: str, value: int, minimum: int) -> None:
    if not is_int(value, minimum):
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ParallelSplit:
    """Aligned sentence pairs: raw text (for BLEU references) and encoded ids (for training).

    ``src_ids[i]`` is ``tokens + [<eos>]``, ``tgt_ids[i]`` is ``[<bos>] + tokens + [<eos>]``.
    ``split[i]`` gives the pair of id lists that :func:`collate` takes.
    """

    src_text: list[str]
    tgt_text: list[str]
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]

    def __post_init__(self) -> None:
        sizes = {len(self.src_text), len(self.tgt_text), len(self.src_ids), len(self.tgt_ids)}
        if len(sizes) != 1:
            raise ValueError(f"ParallelSplit: fields must have equal lengths, got {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.src_text)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.src_ids[i], self.tgt_ids[i]


@dataclass(frozen=True)
class TranslationData:
    """A translation task: train / val / test pairs and the two tokenizers (one object if joint)."""

    train: ParallelSplit
    val: ParallelSplit
    test: ParallelSplit
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    name: str
    src_lang: str
    tgt_lang: str
    meta: Mapping[str, Any] = field(default_factory=dict)


def collate(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = PAD_ID
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of (source ids, target ids) pairs: -> src (B, S), tgt (B, T) LongTensors.

    S and T are the longest source and target in the batch; shorter rows are right-padded with
    ``pad_id``, so ``src != pad_id`` is the attention mask.
    """
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (source ids, target ids) pair")
    for i, (src, tgt) in enumerate(pairs):
        if len(src) == 0 or len(tgt) == 0:
            raise ValueError(f"pairs[{i}]: source and target must be non-empty id sequences")

    def pad(seqs: list[Sequence[int]]) -> torch.Tensor:
        out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
        for row, seq in enumerate(seqs):
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        return out

    return pad([p[0] for p in pairs]), pad([p[1] for p in pairs])


def _encode_split(
    src_text: list[str], tgt_text: list[str], src_tok: Tokenizer, tgt_tok: Tokenizer
) -> ParallelSplit:
    return ParallelSplit(
        src_text, tgt_text, src_tok.encode_batch(src_text), tgt_tok.encode_batch(tgt_text, bos=True)
    )


def load_number_translation(
    seed: int = 0,
    max_number: int = 9999,
    n_train: int = 8000,
    n_val: int = 1000,
    n_test: int = 1000,
    src_lang: str = "en",
    tgt_lang: str = "fr",
) -> TranslationData:
    """Numbers 0..max_number written out by num2words in ``src_lang`` and ``tgt_lang``.

    The numbers are drawn without replacement from a permutation seeded by ``seed`` and dealt to
    train, val and test, so no validation or test number is ever seen in training: the model has to
    learn the composition rules, not a lookup table. Word vocabularies are built from the training
    sentences. ``meta["numbers"]`` lists the numbers of each split.
    """
    import num2words

    _check_count("max_number", max_number, 0)
    _check_count("n_train", n_train, 1)
    _check_count("n_val", n_val, 0)
    _check_count("n_test", n_test, 0)
    if n_train + n_val + n_test > max_number + 1:
        raise ValueError(
            f"n_train + n_val + n_test: {n_train + n_val + n_test} distinct numbers requested but "
            f"max_number={max_number} allows only {max_number + 1}"
        )
    for name, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if lang not in num2words.CONVERTER_CLASSES:
            raise ValueError(f"{name}: num2words has no language {lang!r}")
    order = np.random.default_rng(seed).permutation(max_number + 1)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    bounds["test"] = (n_train + n_val, n_train + n_val + n_test)
    numbers = {split: [int(n) for n in order[a:b]] for split, (a, b) in bounds.items()}
    src = {s: [num2words.num2words(n, lang=src_lang) for n in ns] for s, ns in numbers.items()}
    tgt = {s: [num2words.num2words(n, lang=tgt_lang) for n in ns] for s, ns in numbers.items()}
    src_tok = WordTokenizer.build(src["train"])
    tgt_tok = WordTokenizer.build(tgt["train"])
    return TranslationData(
        train=_encode_split(src["train"], tgt["train"], src_tok, tgt_tok),
        val=_encode_split(src["val"], tgt["val"], src_tok, tgt_tok),
        test=_encode_split(src["test"], tgt["test"], src_tok, tgt_tok),
        src_tokenizer=src_tok,
        tgt_tokenizer=tgt_tok,
        name=f"numbers-{src_lang}-{tgt_lang}",
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        meta={"numbers": numbers, "seed": seed, "num2words_version": _version("num2words")},
    )


def with_target_noise(data: TranslationData, fraction: float, seed: int) -> TranslationData:
    """``data`` with ``fraction`` of the *training* pairs given the target of another training pair,
    drawn uniformly from ``seed``; validation and test stay clean.

    The translation analogue of symmetric label noise (:func:`autodropout.data.images.with_label_noise`):
    an unregularized model memorizes wrong translations it cannot derive from the source, and
    regularization pays (Zhang et al., 2017; Arpit et al., 2017). Exactly ``round(fraction * N)``
    pairs change; each takes the target (text and ids) of one of the N - 1 *other* pairs, so the
    targets' vocabulary and length distribution stay those of the training set.
    """
    n, train = len(data.train), data.train
    count = round(fraction * n)
    if count == 0 or n < 2:
        return data
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=generator)[:count].tolist()
    # An offset of 1..N-1 pairs: never the pair's own target, every other one equally likely.
    donors = ((torch.tensor(index) + torch.randint(1, n, (count,), generator=generator)) % n).tolist()
    tgt_text, tgt_ids = list(train.tgt_text), list(train.tgt_ids)
    for i, j in zip(index, donors):
        tgt_text[i], tgt_ids[i] = train.tgt_text[j], train.tgt_ids[j]
    noisy = ParallelSplit(train.src_text, tgt_text, train.src_ids, tgt_ids)
    return replace(data, train=noisy, meta={**data.meta, "target_noise": {"fraction": fraction, "seed": seed}})


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingDataError(f"{path}: parallel-text file not found")
    try:
        # Only "\n" ends a line: web-crawled text holds stray "\r" and Unicode line separators,
        # and splitting on them would misalign the two sides.
        with path.open(encoding="utf-8", newline="\n") as f:
            return [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text, one sentence per line ({e})") from e


def _read_pairs(
    folder: Path, split: str, src_lang: str, tgt_lang: str
) -> tuple[list[str], list[str]]:
    src_path, tgt_path = folder / f"{split}.{src_lang}", folder / f"{split}.{tgt_lang}"
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; expected one "
            "translation per line, so equal line counts"
        )
    if not src:
        raise DataError(f"{src_path}: empty; expected one sentence per line")
    return src, tgt


def load_parallel_text(
    root: str | os.PathLike[str],
    src_lang: str = "en",
    tgt_lang: str = "fr",
    vocab_size: int = 8000,
    *,
    joint: bool = True,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_train_pairs: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TranslationData:
    """WMT-style parallel text: ``{train,valid,test}.{src_lang,tgt_lang}`` in ``root``.

    One raw (untokenized) sentence per line, line ``i`` of ``train.en`` translated by line ``i``
    of ``train.fr``. For WMT'14 English-French get the training corpora and newstest2013 (valid) /
    newstest2014 (test) from https://www.statmt.org/wmt14/translation-task.html; fairseq's
    ``examples/translation/prepare-wmt14en2fr.sh`` collects them into these file names (use its
    text before the BPE step: SentencePiece does the subword split here).

    Tokenization is a SentencePiece model trained locally on the training text, one model shared
    by both languages when ``joint`` (the usual choice for English-French, which share an
    alphabet and many names) or one per side. Training it takes minutes on WMT-sized data, so
    the model is cached under ``cache_dir`` (default :func:`default_cache_dir`) in
    ``sentencepiece/``, keyed by the training files' paths, sizes and modification times and by
    the options; the data folder itself is never written to. ``max_train_pairs`` keeps the first
    pairs only, for quick runs.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise MissingDataError(f"root: parallel-text folder {folder} does not exist or is not a directory")
    splits = _read_splits(folder, src_lang, tgt_lang, max_train_pairs)

    options = {"vocab_size": vocab_size, "model_type": model_type, "character_coverage": character_coverage,
               "max_train_pairs": max_train_pairs, "sentencepiece": _version("sentencepiece")}
    models = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "sentencepiece"
    train_src, train_tgt = splits["train"]
    if joint:
        src_tok = tgt_tok = _cached_tokenizer(folder, (src_lang, tgt_lang), train_src + train_tgt, options, models)
    else:
        src_tok = _cached_tokenizer(folder, (src_lang,), train_src, options, models)
        tgt_tok = _cached_tokenizer(folder, (tgt_lang,), train_tgt, options, models)
    encoded = {s: _encode_split(*splits[s], src_tok, tgt_tok) for s in splits}
    meta = {"root": str(folder), "joint": joint,
            "model_files": sorted({str(src_tok.model_file), str(tgt_tok.model_file)}), **options}
    return TranslationData(train=encoded["train"], val=encoded["valid"], test=encoded["test"], src_tokenizer=src_tok,
                           tgt_tokenizer=tgt_tok, name=f"parallel-{src_lang}-{tgt_lang}", src_lang=src_lang,
                           tgt_lang=tgt_lang, meta=meta)


def _cached_tokenizer(folder: Path, langs: tuple[str, ...], sentences: list[str], options: Mapping[str, Any],
                      models: Path) -> SentencePieceTokenizer:
    """The SentencePiece model of ``langs``' training files, trained once and cached under ``models``,
    keyed by the files' paths, sizes and modification times and by the options."""
    files = [folder / f"train.{lang}" for lang in langs]
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps([stamp, dict(options)], sort_keys=True).encode()).hexdigest()[:16]
    path = models / f"{'-'.join(langs)}-{key}.model"
    if path.is_file():
        return SentencePieceTokenizer(path)
    return SentencePieceTokenizer.train(sentences, path, options["vocab_size"], model_type=options["model_type"],
                                        character_coverage=options["character_coverage"])


def _read_splits(folder: Path, src_lang: str, tgt_lang: str,
                 max_train_pairs: int | None) -> dict[str, tuple[list[str], list[str]]]:
    """Sentence pairs of train, valid and test; only the first ``max_train_pairs`` training pairs."""
    if max_train_pairs is not None:
        _check_count("max_train_pairs", max_train_pairs, 1)
    splits = {s: _read_pairs(folder, s, src_lang, tgt_lang) for s in ("train", "valid", "test")}
    if max_train_pairs is not None:
        src, tgt = splits["train"]
        splits["train"] = (src[:max_train_pairs], tgt[:max_train_pairs])
    return splits
