"""Datasets for the three AutoDropout tasks: an offline default and a real-format loader for each.

- image classification: :func:`load_digits` (scikit-learn's digits, embedded) and
  :func:`load_cifar` (CIFAR-10/100 python batches);
- language modelling: :func:`load_embedded_corpus` (CPython's own documentation, embedded) and
  :func:`load_ptb` / :func:`load_wikitext2` (token files);
- translation: :func:`load_number_translation` (English -> French number phrases by num2words,
  embedded) and :func:`load_parallel_text` (WMT-style parallel files, SentencePiece).

Everything is plain tensors and small dataclasses, batched in-process (no DataLoader workers), and
deterministic given a seed. Nothing here touches the network; each loader's docstring says which
files it expects and where to get them.
"""
from autodropout.data.bleu import corpus_bleu
from autodropout.data.cifar import load_cifar
from autodropout.data.embedded_corpus import (
    MODULES,
    build_embedded_corpus,
    default_cache_dir,
    load_embedded_corpus,
)
from autodropout.data.images import (
    AUGMENTATIONS,
    ImageSplit,
    ImageSplits,
    augment,
    augment_cifar,
    augment_digits,
    load_digits,
    normalize_per_channel,
    stratified_split,
    with_label_noise,
)
from autodropout.data.language import (
    EOS,
    UNK,
    LMCorpus,
    Vocab,
    batchify,
    encode_lines,
    lm_batches,
    load_lm_files,
    load_ptb,
    load_wikitext2,
    read_token_lines,
)
from autodropout.data.translation import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    ParallelSplit,
    SentencePieceTokenizer,
    Tokenizer,
    TranslationData,
    WordTokenizer,
    collate,
    detokenize_words,
    load_number_translation,
    load_parallel_text,
    tokenize_words,
    with_target_noise,
)

__all__ = [
    "AUGMENTATIONS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "MODULES",
    "PAD_ID",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "ImageSplit",
    "ImageSplits",
    "LMCorpus",
    "ParallelSplit",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TranslationData",
    "Vocab",
    "WordTokenizer",
    "augment",
    "augment_cifar",
    "augment_digits",
    "batchify",
    "build_embedded_corpus",
    "collate",
    "corpus_bleu",
    "default_cache_dir",
    "detokenize_words",
    "encode_lines",
    "lm_batches",
    "load_cifar",
    "load_digits",
    "load_embedded_corpus",
    "load_lm_files",
    "load_number_translation",
    "load_parallel_text",
    "load_ptb",
    "load_wikitext2",
    "normalize_per_channel",
    "read_token_lines",
    "stratified_split",
    "tokenize_words",
    "with_label_noise",
    "with_target_noise",
]
