"""Translation with an encoder-decoder Transformer: embedded En->Fr number phrases or WMT-style text."""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.config import TranslationConfig
from autodropout.data.bleu import corpus_bleu
from autodropout.data.translation import BOS_ID, EOS_ID, PAD_ID, TranslationData, collate, load_number_translation
from autodropout.models import TransformerSeq2Seq, beam_search, greedy_decode
from autodropout.search_spaces import TransformerSpace
from autodropout.tasks.base import Task
from autodropout.tasks.regularization import Regularization, transformer_layer_sites

EVAL_BATCH = 128


class TranslationTask(Task):
    """Transformer encoder-decoder; metric: validation BLEU of greedy (or beam) decoding
    (reward = BLEU / 100). Pattern sites: encoder layers, then decoder layers."""

    kind = "translation"
    metric = "bleu"
    space_type = TransformerSpace
    config: TranslationConfig
    data: TranslationData

    @staticmethod
    def load_data(config: TranslationConfig) -> TranslationData:
        if config.dataset == "numbers":
            return load_number_translation(seed=config.train.seed, max_number=config.max_number,
                                           n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
                                           src_lang=config.src_lang, tgt_lang=config.tgt_lang)
        from autodropout.data.translation import load_parallel_text

        return load_parallel_text(config.root, config.src_lang, config.tgt_lang, vocab_size=config.vocab_size)

    @property
    def num_sites(self) -> int:
        return self.config.n_enc_layers + self.config.n_dec_layers

    @property
    def site_stacks(self) -> tuple[int, int]:
        """Encoder and decoder site counts: a one-stack (language-model) pattern maps onto each."""
        return self.config.n_enc_layers, self.config.n_dec_layers

    def build_model(self, regularization: Regularization) -> nn.Module:
        c = self.config
        n_enc = c.n_enc_layers
        if regularization.pattern is not None:
            layers = regularization.pattern.layers
            encoder, _ = transformer_layer_sites(_part(regularization, layers[:n_enc]), n_enc)
            decoder, _ = transformer_layer_sites(_part(regularization, layers[n_enc:]), c.n_dec_layers,
                                                 cross_attention=True)
            embedding = None
        else:
            encoder, embedding = transformer_layer_sites(regularization, n_enc)
            decoder, _ = transformer_layer_sites(regularization, c.n_dec_layers, cross_attention=True)
        return TransformerSeq2Seq(len(self.data.src_tokenizer), len(self.data.tgt_tokenizer), c.d_model,
                                  n_enc, c.n_dec_layers, c.n_heads, d_ff=c.d_ff or None, max_len=c.max_len + 2,
                                  encoder_sites=encoder, decoder_sites=decoder, embedding_dropout=embedding,
                                  pad_id=PAD_ID)

    def prepare_step_options(self, model: nn.Module) -> dict[str, Any]:
        # Y-Drop's conductance interpolates the source embedding (token ids cannot be interpolated):
        # a unit's importance for translating the source, with the target prefix given.
        return {"input_module": model.src_embed.token}

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


def _part(regularization: Regularization, layers: tuple) -> Regularization:
    pattern = regularization.pattern
    return Regularization(pattern=type(pattern)(pattern.kind, tuple(layers)))
