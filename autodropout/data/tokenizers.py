"""Tokenizers of the translation data: words for the embedded number phrases, SentencePiece for
WMT-style text. Every tokenizer uses the same special ids, ``<pad>`` = 0, ``<bos>`` = 1,
``<eos>`` = 2, ``<unk>`` = 3, so :func:`~autodropout.data.translation.collate` pads with 0 for either.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from autodropout.core.checks import is_int
from autodropout.core.errors import DataError, MissingDataError
from autodropout.data.embedded_corpus import write_atomic
from autodropout.data.language import Vocab

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "SPECIALS", "UNK_ID", "SentencePieceTokenizer", "Tokenizer",
           "WordTokenizer", "detokenize_words", "tokenize_words"]

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

_WORD = re.compile(r"[^\s,\-]+|[,\-]")
_GLUE_LEFT = {",", "-"}  # written without a space before them


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
            raise MissingDataError(f"{self.model_file}: SentencePiece model not found")
        try:
            self.processor = spm.SentencePieceProcessor(model_file=str(self.model_file))
        except (OSError, RuntimeError) as e:
            raise DataError(f"{self.model_file}: not a SentencePiece model ({e})") from e
        sp = self.processor
        ids = (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id())
        if ids != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise DataError(
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

        if not is_int(vocab_size, len(SPECIALS) + 1):
            raise ValueError(f"vocab_size: expected an int >= {len(SPECIALS) + 1}, got {vocab_size!r}")
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
