"""Word-level language modelling with a causal Transformer: embedded corpus, PTB or WikiText-2."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.core.config import check_non_negative, check_positive
from autodropout.core.errors import ConfigError
from autodropout.data.language import LMCorpus, batchify, lm_batches
from autodropout.models import TransformerLM, TransformerSites
from autodropout.search_spaces import TransformerSpace
from autodropout.tasks.base import Task, TaskSites
from autodropout.tasks.loop import TrainConfig
from autodropout.tasks.registry import register_task
from autodropout.tasks.regularization import Regularization
from autodropout.tasks.reward import PERPLEXITY_CONSTANT

EVAL_BATCH = 16


@dataclass(frozen=True)
class LanguageModelConfig:
    """Word-level language modelling with a causal Transformer (``kind: language_model``)."""

    kind: Literal["language_model"] = "language_model"
    dataset: Literal["embedded", "ptb", "wikitext2"] = "embedded"
    root: str | None = None
    vocab_size: int = 5000
    max_tokens: int = 0
    bptt: int = 32
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0
    reward_constant: float = PERPLEXITY_CONSTANT
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.01, batch_size=32, grad_clip=1.0)
    )

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "bptt", "d_model", "n_layers", "n_heads", "reward_constant")
        check_non_negative(self, "max_tokens", "d_ff")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.dataset != "embedded" and not self.root:
            raise ConfigError(f"root: dataset {self.dataset!r} needs root (the folder with its token files)")


@register_task
class LanguageModelTask(Task):
    """Causal Transformer LM; metric: validation perplexity (reward = c / perplexity)."""

    kind = "language_model"
    config_type = LanguageModelConfig
    metric = "perplexity"
    space_type = TransformerSpace
    site_kind = "seq"
    config: LanguageModelConfig
    data: LMCorpus

    @staticmethod
    def load_data(config: LanguageModelConfig) -> LMCorpus:
        if config.dataset == "embedded":
            from autodropout.data.embedded_corpus import load_embedded_corpus

            return load_embedded_corpus(vocab_size=config.vocab_size, max_train_tokens=config.max_tokens or None)
        from autodropout.data.language import load_ptb, load_wikitext2

        loader = load_ptb if config.dataset == "ptb" else load_wikitext2
        corpus = loader(config.root, vocab_size=config.vocab_size)
        if config.max_tokens:
            corpus = LMCorpus(corpus.train[: config.max_tokens], corpus.valid, corpus.test, corpus.vocab,
                              corpus.name, dict(corpus.meta))
        return corpus

    @classmethod
    def describe_sites(cls, config: LanguageModelConfig) -> TaskSites:
        layout = TransformerLM.site_layout(config.n_layers)
        return TaskSites(f"Transformer LM {config.n_layers}L d{config.d_model} h{config.n_heads}", cls.space_type.kind,
                         ((config.bptt, config.d_model, config.n_heads),) * sum(layout.stacks),
                         None if config.dataset == "embedded" else config.root, layout)

    @property
    def site_layout(self) -> TransformerSites:
        return TransformerLM.site_layout(self.config.n_layers)

    def build_model(self, regularization: Regularization) -> nn.Module:
        c = self.config
        return TransformerLM(len(self.data.vocab), c.d_model, c.n_layers, c.n_heads, d_ff=c.d_ff or None,
                             max_len=c.bptt, **regularization.model_sites(self.site_layout))

    def _train_rows(self) -> torch.Tensor:
        return batchify(self.data.train, self.config.train.batch_size)

    def num_train_batches(self) -> int:
        return math.ceil((self._train_rows().shape[1] - 1) / self.config.bptt)

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A Transformer without memory carries no state across windows, so window order is free:
        # shuffling it decorrelates consecutive updates.
        windows = list(lm_batches(self._train_rows(), self.config.bptt))
        for i in torch.randperm(len(windows), generator=generator).tolist():
            yield windows[i]

    def loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        stream = {"val": self.data.valid, "test": self.data.test}[split]
        model.eval()
        total, count = 0.0, 0
        for inputs, targets in lm_batches(batchify(stream, EVAL_BATCH), self.config.bptt):
            logits = model(inputs.to(self.device)).float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.to(self.device).reshape(-1),
                                     reduction="sum").item()
            count += targets.numel()
        loss = total / count
        return {"perplexity": math.exp(min(loss, 50.0)), "loss": loss}
