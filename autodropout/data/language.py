"""Word-level language-modelling data: vocabulary, corpus container, PTB / WikiText-2, batching.

AutoDropout (Pham & Le, AAAI 2021, arXiv 2101.01761) searches Transformer patterns directly on Penn
Treebank. The loaders here read the standard pre-tokenized files (one sentence or paragraph per
line, tokens separated by spaces, ``<unk>`` already in the text) and follow the usual convention of
appending ``<eos>`` to every line, so token counts and perplexities compare with published ones.
The embedded offline corpus (``embedded_corpus.py``) returns the same :class:`LMCorpus`.

Models here are batch-first: :func:`batchify` lays a token stream out as (batch, time) and
:func:`lm_batches` cuts it into (B, T) input / target windows.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autodropout.core.checks import is_int
from autodropout.core.errors import DataError, MissingDataError

__all__ = [
    "EOS",
    "UNK",
    "LMCorpus",
    "Vocab",
    "batchify",
    "encode_lines",
    "lm_batches",
    "load_lm_files",
    "load_ptb",
    "load_wikitext2",
    "read_token_lines",
]

UNK = "<unk>"
EOS = "<eos>"


class Vocab:
    """A word <-> id mapping; special tokens take the first ids, in the order given.

    Words missing from the vocabulary map to ``unk``. Build one from training text only with
    :meth:`build`, so that validation and test words never shape it.
    """

    def __init__(self, itos: Sequence[str], unk: str = UNK) -> None:
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dupes = sorted(t for t, n in Counter(self.itos).items() if n > 1)
            raise ValueError(f"itos: tokens must be unique, repeated: {dupes[:5]}")
        if unk not in self.stoi:
            raise ValueError(f"unk: {unk!r} must be one of the vocabulary tokens")
        self.unk = unk
        self.unk_id = self.stoi[unk]

    @classmethod
    def build(
        cls,
        sentences: Iterable[Iterable[str]],
        max_size: int | None = None,
        specials: Sequence[str] = (UNK, EOS),
        unk: str = UNK,
    ) -> Vocab:
        """Count the tokens of ``sentences`` and keep the most frequent.

        ``specials`` come first (ids 0, 1, ...) and are not counted when they occur in the text
        (PTB spells ``<unk>`` in its files). The rest is ordered by descending count, ties broken
        alphabetically, and cut so that the whole vocabulary, specials included, has at most
        ``max_size`` entries (None keeps every word).
        """
        if max_size is not None and not is_int(max_size, len(specials)):
            raise ValueError(
                f"max_size: expected None or an int >= {len(specials)} (the special tokens), "
                f"got {max_size!r}"
            )
        counts = Counter(tok for sentence in sentences for tok in sentence)
        for tok in specials:
            counts.pop(tok, None)
        words = sorted(counts, key=lambda tok: (-counts[tok], tok))
        if max_size is not None:
            words = words[: max_size - len(specials)]
        return cls([*specials, *words], unk=unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_id)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        get, unk_id = self.stoi.get, self.unk_id
        return [get(tok, unk_id) for tok in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, unk={self.unk!r})"


@dataclass(frozen=True)
class LMCorpus:
    """A language-modelling corpus as three 1-D LongTensors of token ids (``<eos>`` ends each line).

    ``meta`` carries provenance: the source files, or for the embedded corpus the Python version
    whose documentation it was extracted from.
    """

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    vocab: Vocab
    name: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def python_version(self) -> str | None:
        """The Python version the embedded corpus came from (None for file corpora)."""
        return self.meta.get("python_version")


def encode_lines(lines: Iterable[Sequence[str]], vocab: Vocab, eos: str = EOS) -> torch.Tensor:
    """Concatenate tokenized lines into one id stream, appending ``eos`` after every line."""
    eos_id = vocab[eos]
    ids: list[int] = []
    for line in lines:
        ids.extend(vocab.encode(line))
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def read_token_lines(path: str | os.PathLike[str]) -> list[list[str]]:
    """Read a whitespace-tokenized UTF-8 text file into lines of tokens (blank lines kept as [])."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    try:
        # newline="\n": only a real line feed ends a line, so a stray carriage return in a corpus
        # cannot shift the line structure.
        with path.open(encoding="utf-8", newline="\n") as f:
            lines = [line.split() for line in f]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text ({e})") from e
    if not any(lines):
        raise DataError(f"{path}: contains no tokens; expected one tokenized sentence per line")
    return lines


def load_lm_files(
    root: str | os.PathLike[str],
    filenames: tuple[str, str, str],
    name: str,
    vocab_size: int | None = None,
) -> LMCorpus:
    """Load a train / valid / test triple of tokenized text files from ``root``.

    Every line (blank ones too, as in the reference implementations) ends with ``<eos>``. The
    vocabulary is built from the training file only, capped at ``vocab_size`` entries including
    ``<unk>`` and ``<eos>``.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise MissingDataError(f"root: {name} folder {folder} does not exist or is not a directory")
    missing = [f for f in filenames if not (folder / f).is_file()]
    if missing:
        raise MissingDataError(
            f"{folder / missing[0]}: {name} file not found; expected {', '.join(filenames)} in {folder}"
        )
    train, valid, test = (read_token_lines(folder / f) for f in filenames)
    vocab = Vocab.build(train, max_size=vocab_size)
    return LMCorpus(
        train=encode_lines(train, vocab),
        valid=encode_lines(valid, vocab),
        test=encode_lines(test, vocab),
        vocab=vocab,
        name=name,
        meta={"root": str(folder), "files": list(filenames)},
    )


def load_ptb(root: str | os.PathLike[str], vocab_size: int | None = None) -> LMCorpus:
    """Penn Treebank (Mikolov et al.'s preprocessed version): 929k / 73k / 82k words, 10k vocab.

    Expects ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` in ``root``; they are in
    ``data/`` of http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz.
    """
    return load_lm_files(root, ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), "ptb", vocab_size)


def load_wikitext2(root: str | os.PathLike[str], vocab_size: int | None = None) -> LMCorpus:
    """WikiText-2 (Merity et al., 2016), the tokenized version with a 33k vocabulary.

    Expects ``wiki.train.tokens``, ``wiki.valid.tokens``, ``wiki.test.tokens`` in ``root``: the
    contents of Salesforce Research's ``wikitext-2-v1.zip``, also published as the
    ``wikitext-2-v1`` configuration of the Hugging Face dataset ``Salesforce/wikitext``.
    """
    files = ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens")
    return load_lm_files(root, files, "wikitext2", vocab_size)


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Lay a 1-D token stream out as (batch_size, n) parallel streams, dropping the remainder.

    Row ``b`` is the ``b``-th contiguous chunk of the stream, so a model that carries state across
    consecutive windows of a row sees continuous text.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids: expected a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
    if not is_int(batch_size, 1):
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(
            f"batch_size: {batch_size} leaves fewer than 2 tokens per row of a {ids.numel()}-token "
            "stream; expected a smaller batch size"
        )
    return ids[: n * batch_size].view(batch_size, n)


def lm_batches(data: torch.Tensor, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, targets), each (B, T) with T <= bptt, covering ``data`` (B, N) in order.

    ``targets`` are ``inputs`` shifted one step ahead; the last window is shorter when N - 1 is
    not a multiple of ``bptt``. Both are contiguous, so ``.view(-1)`` works on them.
    """
    if data.dim() != 2:
        raise ValueError(f"data: expected (batch, time) from batchify, got shape {tuple(data.shape)}")
    if not is_int(bptt, 1):
        raise ValueError(f"bptt: expected a positive int, got {bptt!r}")
    for start in range(0, data.shape[1] - 1, bptt):
        end = min(start + bptt, data.shape[1] - 1)
        yield data[:, start:end].contiguous(), data[:, start + 1 : end + 1].contiguous()
