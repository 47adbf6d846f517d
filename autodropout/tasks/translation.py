"""Translation with an encoder-decoder Transformer: embedded En->Fr number phrases or WMT-style text."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.core.config import check_fraction, check_non_negative, check_positive
from autodropout.core.errors import ConfigError
from autodropout.data.bleu import corpus_bleu
from autodropout.data.translation import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TranslationData,
    collate,
    load_number_translation,
    load_parallel_text,
    with_target_noise,
)
from autodropout.models import TransformerSeq2Seq, TransformerSites, beam_search, greedy_decode
from autodropout.search_spaces import TransformerSpace
from autodropout.tasks.base import Task, TaskSites
from autodropout.tasks.loop import TrainConfig
from autodropout.tasks.registry import register_task
from autodropout.tasks.regularization import Regularization

EVAL_BATCH = 128


@dataclass(frozen=True)
class TranslationConfig:
    """Sequence-to-sequence translation with a Transformer (``kind: translation``).

    ``split_seed`` draws which numbers go to train / validation / test (``dataset: numbers``),
    independently of ``train.seed``. ``label_noise``: the fraction of training pairs given another
    pair's target (drawn from ``split_seed``; validation and test stay clean), the memorization regime
    where regularization pays (:func:`~autodropout.data.translation.with_target_noise`).
    """

    kind: Literal["translation"] = "translation"
    dataset: Literal["numbers", "parallel"] = "numbers"
    root: str | None = None
    src_lang: str = "en"
    tgt_lang: str = "fr"
    vocab_size: int = 8000
    max_number: int = 9999
    n_train: int = 3000
    n_val: int = 300
    n_test: int = 300
    split_seed: int = 0
    label_noise: float = 0.0
    max_len: int = 32
    d_model: int = 64
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0
    beam_size: int = 1
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.01, batch_size=64, grad_clip=1.0)
    )

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "max_number", "n_train", "n_val", "n_test", "max_len", "d_model",
                       "n_enc_layers", "n_dec_layers", "n_heads", "beam_size")
        check_non_negative(self, "d_ff")
        check_fraction(self, "label_noise", allow_zero=True)
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.dataset != "numbers" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder with train/valid/test files)")


@register_task
class TranslationTask(Task):
    """Transformer encoder-decoder; metric: validation BLEU of greedy (or beam) decoding
    (reward = BLEU / 100). Pattern sites: encoder layers, then decoder layers."""

    kind = "translation"
    config_type = TranslationConfig
    metric = "bleu"
    space_type = TransformerSpace
    site_kind = "seq"
    config: TranslationConfig
    data: TranslationData

    @staticmethod
    def load_data(config: TranslationConfig) -> TranslationData:
        if config.dataset == "numbers":
            data = load_number_translation(seed=config.split_seed, max_number=config.max_number,
                                           n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
                                           src_lang=config.src_lang, tgt_lang=config.tgt_lang)
        else:
            data = load_parallel_text(config.root, config.src_lang, config.tgt_lang, vocab_size=config.vocab_size)
        return with_target_noise(data, config.label_noise, config.split_seed)

    @classmethod
    def describe_sites(cls, config: TranslationConfig) -> TaskSites:
        layout = TransformerSeq2Seq.site_layout(config.n_enc_layers, config.n_dec_layers)
        # Sources and decoder inputs are clipped to max_len + 1 tokens (_clip).
        return TaskSites(f"Transformer {config.n_enc_layers}+{config.n_dec_layers}L "
                         f"d{config.d_model} h{config.n_heads}",
                         cls.space_type.kind,
                         ((config.max_len + 1, config.d_model, config.n_heads),) * sum(layout.stacks),
                         None if config.dataset == "numbers" else config.root, layout)

    @property
    def site_layout(self) -> TransformerSites:
        return TransformerSeq2Seq.site_layout(self.config.n_enc_layers, self.config.n_dec_layers)

    def build_model(self, regularization: Regularization) -> nn.Module:
        c = self.config
        return TransformerSeq2Seq(len(self.data.src_tokenizer), len(self.data.tgt_tokenizer), c.d_model,
                                  c.n_enc_layers, c.n_dec_layers, c.n_heads, d_ff=c.d_ff or None,
                                  max_len=c.max_len + 2, pad_id=PAD_ID, **regularization.model_sites(self.site_layout))

    def num_train_batches(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Any, torch.Tensor]]:
        split, size = self.data.train, self.config.train.batch_size
        order = torch.randperm(len(split), generator=generator).tolist()
        for start in range(0, len(order), size):
            src, tgt = collate([self._clip(split[i]) for i in order[start:start + size]])
            yield (src, tgt[:, :-1]), tgt[:, 1:]

    def _clip(self, pair: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
        limit = self.config.max_len + 1
        return pair[0][:limit], pair[1][:limit + 1]

    def loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
        src, tgt_in = inputs
        logits = model(src, tgt_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=PAD_ID)

    @torch.no_grad()
    def translate(self, model: nn.Module, sources: list[list[int]]) -> list[str]:
        model.eval()
        out = []
        for start in range(0, len(sources), EVAL_BATCH):
            src, _ = collate([(s[: self.config.max_len + 1], [BOS_ID]) for s in sources[start:start + EVAL_BATCH]])
            src = src.to(self.device)
            if self.config.beam_size > 1:
                ids = beam_search(model, src, BOS_ID, EOS_ID, self.config.max_len, beam_size=self.config.beam_size)
            else:
                ids = greedy_decode(model, src, BOS_ID, EOS_ID, self.config.max_len)
            out.extend(self.data.tgt_tokenizer.decode(seq) for seq in ids)
        return out

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        data = {"val": self.data.val, "test": self.data.test}[split]
        model.eval()
        total, count = 0.0, 0
        for start in range(0, len(data), EVAL_BATCH):
            src, tgt = collate([self._clip(data[i]) for i in range(start, min(start + EVAL_BATCH, len(data)))])
            src, tgt = src.to(self.device), tgt.to(self.device)
            logits = model(src, tgt[:, :-1]).float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1),
                                     ignore_index=PAD_ID, reduction="sum").item()
            count += (tgt[:, 1:] != PAD_ID).sum().item()
        hypotheses = self.translate(model, data.src_ids)
        exact = sum(h == r for h, r in zip(hypotheses, data.tgt_text)) / max(len(data), 1)
        return {"bleu": corpus_bleu(hypotheses, data.tgt_text), "exact_match": exact, "loss": total / max(count, 1)}

