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
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import torch

from autodropout.data.embedded_corpus import default_cache_dir, write_atomic
from autodropout.data.language import Vocab

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
]

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

_WORD = re.compile(r"[^\s,\-]+|[,\-]")
_GLUE_LEFT = {",", "-"}  # written without a space before them


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


class Tokenizer(Protocol):
    """What a task needs from a tokenizer; both implementations here follow it."""

    def __len__(self) -> int: ...

    def encode(self, text: str, bos: bool = False, eos: bool = True) -> list[int]: ...

    def encode_batch(
        self, texts: Sequence[str], bos: bool = False, eos: bool = True
    ) -> list[list[int]]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def _content(ids: Iterable[int]) -> list[int]:
    """Ids up to the first ``<eos>``, without ``<pad>`` / ``<bos>``: what a decoder emitted."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            out.append(i)
    return out


def tokenize_words(text: str) -> list[str]:
    """Split on spaces, and make ``,`` and ``-`` tokens of their own.

    French "vingt-deux" -> ["vingt", "-", "deux"], so "vingt" is the same token alone and in a
    compound; English "nine thousand, nine" -> ["nine", "thousand", ",", "nine"].
    """
    return _WORD.findall(text)


def detokenize_words(tokens: Iterable[str]) -> str:
    """Inverse of :func:`tokenize_words` for text written as num2words writes it.

    That is: single spaces, a comma right after its word, hyphens without spaces. For such text
    ``detokenize_words(tokenize_words(s)) == s`` exactly.
    """
    text = ""
    for tok in tokens:
        text += tok if not text or tok in _GLUE_LEFT or text.endswith("-") else " " + tok
    return text


class WordTokenizer:
    """Word-level tokenizer over :func:`tokenize_words` with the shared special ids."""

    def __init__(self, vocab: Vocab) -> None:
        if vocab.itos[: len(SPECIALS)] != list(SPECIALS) or vocab.unk != SPECIALS[UNK_ID]:
            raise ValueError(f"vocab: expected the special tokens {SPECIALS} at ids 0-3")
        self.vocab = vocab

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int | None = None) -> WordTokenizer:
        """Vocabulary from ``texts`` (training text only), at most ``max_size`` entries."""
        sentences = (tokenize_words(t) for t in texts)
        vocab = Vocab.build(sentences, max_size=max_size, specials=SPECIALS, unk=SPECIALS[UNK_ID])
        return cls(vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, bos: bool = False, eos: bool = True) -> list[int]:
        ids = self.vocab.encode(tokenize_words(text))
        return [BOS_ID] * bos + ids + [EOS_ID] * eos

    def encode_batch(
        self, texts: Sequence[str], bos: bool = False, eos: bool = True
    ) -> list[list[int]]:
        return [self.encode(t, bos=bos, eos=eos) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return detokenize_words(self.vocab.decode(_content(ids)))

    def __repr__(self) -> str:
        return f"WordTokenizer(size={len(self)})"


class SentencePieceTokenizer:
    """A SentencePiece model (Kudo & Richardson, 2018) with the shared special ids."""

    def __init__(self, model_file: str | os.PathLike[str]) -> None:
        import sentencepiece as spm

        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise FileNotFoundError(f"{self.model_file}: SentencePiece model not found")
        try:
            self.processor = spm.SentencePieceProcessor(model_file=str(self.model_file))
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{self.model_file}: not a SentencePiece model ({e})") from e
        sp = self.processor
        ids = (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id())
        if ids != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(
                f"{self.model_file}: expected pad/bos/eos/unk ids (0, 1, 2, 3), got {ids}; "
                "train it with SentencePieceTokenizer.train"
            )

    @classmethod
    def train(
        cls,
        sentences: Sequence[str],
        model_file: str | os.PathLike[str],
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        input_sentence_size: int = 2_000_000,
    ) -> SentencePieceTokenizer:
        """Train on ``sentences`` (raw, untokenized text) and write the model atomically.

        Corpora larger than ``input_sentence_size`` sentences are subsampled for training, as
        is usual for WMT-sized data. ``vocab_size`` is an upper bound: tiny corpora get fewer
        pieces instead of an error.
        """
        import sentencepiece as spm

        _check_count("vocab_size", vocab_size, len(SPECIALS) + 1)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                input_sentence_size=input_sentence_size,
                shuffle_input_sentence=True,
                hard_vocab_limit=False,
                pad_id=PAD_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                unk_id=UNK_ID,
                pad_piece=SPECIALS[PAD_ID],
                bos_piece=SPECIALS[BOS_ID],
                eos_piece=SPECIALS[EOS_ID],
                unk_piece=SPECIALS[UNK_ID],
                num_threads=max(1, min(16, os.cpu_count() or 1)),
                minloglevel=2,
            )
        except RuntimeError as e:
            raise ValueError(f"vocab_size / model_type: SentencePiece training failed: {e}") from e
        write_atomic(Path(model_file), model.getvalue())
        return cls(model_file)

    def __len__(self) -> int:
        return int(self.processor.get_piece_size())

    def encode(self, text: str, bos: bool = False, eos: bool = True) -> list[int]:
        return list(self.processor.encode(text, out_type=int, add_bos=bos, add_eos=eos))

    def encode_batch(
        self, texts: Sequence[str], bos: bool = False, eos: bool = True
    ) -> list[list[int]]:
        """Like :meth:`encode` on each text, multi-threaded inside SentencePiece."""
        encoded = self.processor.encode(list(texts), out_type=int, add_bos=bos, add_eos=eos)
        return [list(ids) for ids in encoded]

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.processor.decode(_content(ids)))

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({str(self.model_file)!r}, size={len(self)})"


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


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: parallel-text file not found")
    try:
        # Only "\n" ends a line: web-crawled text holds stray "\r" and Unicode line separators,
        # and splitting on them would misalign the two sides.
        with path.open(encoding="utf-8", newline="\n") as f:
            return [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: expected UTF-8 text, one sentence per line ({e})") from e


def _read_pairs(
    folder: Path, split: str, src_lang: str, tgt_lang: str
) -> tuple[list[str], list[str]]:
    src_path, tgt_path = folder / f"{split}.{src_lang}", folder / f"{split}.{tgt_lang}"
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; expected one "
            "translation per line, so equal line counts"
        )
    if not src:
        raise ValueError(f"{src_path}: empty; expected one sentence per line")
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
        raise FileNotFoundError(
            f"root: parallel-text folder {folder} does not exist or is not a directory"
        )
    if max_train_pairs is not None:
        _check_count("max_train_pairs", max_train_pairs, 1)
    splits = {s: _read_pairs(folder, s, src_lang, tgt_lang) for s in ("train", "valid", "test")}
    if max_train_pairs is not None:
        src, tgt = splits["train"]
        splits["train"] = (src[:max_train_pairs], tgt[:max_train_pairs])

    options = {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "character_coverage": character_coverage,
        "max_train_pairs": max_train_pairs,
        "sentencepiece": _version("sentencepiece"),
    }
    models = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    models = models / "sentencepiece"

    def tokenizer(langs: tuple[str, ...], sentences: list[str]) -> SentencePieceTokenizer:
        files = [folder / f"train.{lang}" for lang in langs]
        stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        key = hashlib.sha256(json.dumps([stamp, options], sort_keys=True).encode()).hexdigest()[:16]
        path = models / f"{'-'.join(langs)}-{key}.model"
        if path.is_file():
            return SentencePieceTokenizer(path)
        return SentencePieceTokenizer.train(
            sentences, path, vocab_size, model_type=model_type, character_coverage=character_coverage
        )

    train_src, train_tgt = splits["train"]
    if joint:
        src_tok = tgt_tok = tokenizer((src_lang, tgt_lang), train_src + train_tgt)
    else:
        src_tok, tgt_tok = tokenizer((src_lang,), train_src), tokenizer((tgt_lang,), train_tgt)
    encoded = {s: _encode_split(*splits[s], src_tok, tgt_tok) for s in splits}
    return TranslationData(
        train=encoded["train"],
        val=encoded["valid"],
        test=encoded["test"],
        src_tokenizer=src_tok,
        tgt_tokenizer=tgt_tok,
        name=f"parallel-{src_lang}-{tgt_lang}",
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        meta={
            "root": str(folder),
            "joint": joint,
            "model_files": sorted({str(src_tok.model_file), str(tgt_tok.model_file)}),
            **options,
        },
    )
