"""Word-level language modelling with a causal Transformer: embedded corpus, PTB or WikiText-2."""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.config import LanguageModelConfig
from autodropout.data.language import LMCorpus, batchify, lm_batches
from autodropout.models import TransformerLM
from autodropout.search_spaces import TransformerSpace
from autodropout.tasks.base import Task
from autodropout.tasks.regularization import Regularization, transformer_layer_sites

EVAL_BATCH = 16


class LanguageModelTask(Task):
    """Causal Transformer LM; metric: validation perplexity (reward = c / perplexity)."""

    kind = "language_model"
    metric = "perplexity"
    space_type = TransformerSpace
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

    @property
    def num_sites(self) -> int:
        return self.config.n_layers

    def build_model(self, regularization: Regularization) -> nn.Module:
        c = self.config
        layer_sites, embedding = transformer_layer_sites(regularization, c.n_layers)
        return TransformerLM(len(self.data.vocab), c.d_model, c.n_layers, c.n_heads, d_ff=c.d_ff or None,
                             max_len=c.bptt, layer_sites=layer_sites, embedding_dropout=embedding)

    def prepare_step_options(self, model: nn.Module) -> dict[str, Any]:
        # Token ids cannot be interpolated: Y-Drop's conductance interpolates the token embedding.
        return {"input_module": model.embed.token}

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
