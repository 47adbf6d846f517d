"""Batched greedy and beam-search decoding for :class:`~autodropout.models.TransformerSeq2Seq`.

The model needs two methods: ``encode(src) -> Encoded`` (with ``repeat_interleave``) and
``decode(tgt_prefix (B, T), encoded) -> logits (B, T, V)``. Each step re-runs the decoder over the
whole prefix (no key/value cache: simple, and cheap at the lengths of our tasks). Both functions
switch the model to eval mode for the call (sites become inactive) and restore its mode afterwards.

Outputs are token id lists without BOS and without EOS, cut at the first EOS; a sequence that
reaches ``max_len`` tokens without EOS is returned truncated.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autodropout.core.checks import is_int, is_real


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int) -> list[list[int]]:
    """Most likely next token at every step, for the whole batch at once.

    Args:
        model: a ``TransformerSeq2Seq`` (or anything with its ``encode`` / ``decode``).
        src: source ids (B, S), padded with the model's ``pad_id``.
        bos_id, eos_id: start and end tokens of the target vocabulary.
        max_len: most tokens generated per sequence (EOS included).

    Returns:
        B lists of token ids.
    """
    _check_args(src, bos_id, eos_id, max_len)
    with _eval_mode(model):
        encoded = model.encode(src)
        tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            step = model.decode(tokens, encoded)[:, -1].argmax(dim=-1).masked_fill(finished, eos_id)
            tokens = torch.cat([tokens, step[:, None]], dim=1)
            finished |= step == eos_id
            if bool(finished.all()):
                break
    return [_cut(row, eos_id) for row in tokens[:, 1:].tolist()]


@torch.no_grad()
def beam_search(
    model: nn.Module,
    src: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    length_penalty: float = 0.6,
) -> list[list[int]]:
    """Beam search (beam 4, length penalty 0.6 as for Vaswani et al.'s translation results),
    vectorised over the batch and the beams.

    A hypothesis of n tokens (EOS included) with log-probability s scores s / lp(n), where
    lp(n) = ((5 + n) / 6) ** length_penalty (Wu et al. 2016, GNMT); 0 ranks by log-probability.

    Each step extends the ``beam_size`` live hypotheses, keeps the 2 x beam_size best extensions,
    and, as in fairseq, an extension ending in EOS is finished only if it ranks among the best
    ``beam_size`` (so ``beam_size=1`` is exactly greedy decoding); the live beam continues with the
    best extensions that do not end in EOS. A sentence stops once it has ``beam_size`` finished
    hypotheses, or when no live hypothesis can beat its best finished one any more (log-probabilities
    only fall, and lp(n) <= lp(max_len)). At ``max_len`` the live hypotheses finish truncated.

    Args:
        model, src, bos_id, eos_id, max_len: as for :func:`greedy_decode`.
        beam_size: hypotheses kept per sentence (>= 1).
        length_penalty: GNMT's alpha (>= 0).

    Returns:
        B lists of token ids: each sentence's best finished hypothesis.
    """
    _check_args(src, bos_id, eos_id, max_len)
    if not is_int(beam_size, 1):
        raise ValueError(f"beam_size: expected a positive int, got {beam_size!r}")
    if not is_real(length_penalty, 0.0):
        raise ValueError(f"length_penalty: expected a number >= 0, got {length_penalty!r}")

    batch, k = src.shape[0], beam_size
    with _eval_mode(model):
        encoded = model.encode(src).repeat_interleave(k)
        bos = torch.full((batch * k, 1), bos_id, dtype=torch.long, device=src.device)
        beams = _Beams.start(batch, k, eos_id, max_len, length_penalty, src.device)
        for t in range(max_len):
            logits = model.decode(torch.cat([bos, beams.alive.view(batch * k, t)], dim=1), encoded)[:, -1]
            if beams.extend(F.log_softmax(logits.float(), dim=-1).view(batch, k, -1), t):
                break
    return [_cut(row, eos_id) for row in beams.done_seq[:, 0].tolist()]


@dataclass
class _Beams:
    """The state of :func:`beam_search` for B sentences x k beams: live prefixes (B, k, t) and their
    log-probabilities, finished hypotheses and their length-penalised scores."""

    k: int
    eos_id: int
    max_len: int
    length_penalty: float
    alive: torch.Tensor
    alive_score: torch.Tensor
    done_seq: torch.Tensor
    done_score: torch.Tensor
    done_count: torch.Tensor
    stopped: torch.Tensor

    @classmethod
    def start(cls, batch: int, k: int, eos_id: int, max_len: int, length_penalty: float,
              device: torch.device) -> _Beams:
        # All beams start as the same empty prefix: only the first may be extended, or the beam
        # would fill with copies.
        alive_score = torch.full((batch, k), float("-inf"), device=device)
        alive_score[:, 0] = 0.0
        return cls(k, eos_id, max_len, length_penalty,
                   alive=torch.empty(batch, k, 0, dtype=torch.long, device=device), alive_score=alive_score,
                   done_seq=torch.empty(batch, k, 0, dtype=torch.long, device=device),
                   done_score=torch.full((batch, k), float("-inf"), device=device),
                   done_count=torch.zeros(batch, dtype=torch.long, device=device),
                   stopped=torch.zeros(batch, dtype=torch.bool, device=device))

    def lp(self, n: int) -> float:
        return ((5 + n) / 6) ** self.length_penalty

    def extend(self, log_probs: torch.Tensor, t: int) -> bool:
        """One step from (B, k, V) next-token log-probabilities; True when the search is over."""
        k, batch, vocab = self.k, log_probs.shape[0], log_probs.shape[-1]
        scores = (self.alive_score[..., None] + log_probs).view(batch, k * vocab)
        top_score, top_index = scores.topk(min(2 * k, k * vocab), dim=1)
        token = top_index % vocab
        parent = self.alive.gather(1, (top_index // vocab)[..., None].expand(-1, -1, t))
        extended = torch.cat([parent, token[..., None]], dim=2)
        last = t + 1 == self.max_len
        ends = torch.ones_like(token, dtype=torch.bool) if last else token == self.eos_id

        rank = torch.arange(top_score.shape[1], device=token.device)
        finishing = ends & (rank < k) & ~self.stopped[:, None] & torch.isfinite(top_score)
        finished = (top_score / self.lp(t + 1)).masked_fill(~finishing, float("-inf"))
        candidates = torch.cat([self.done_score, finished], dim=1)
        pool = torch.cat([F.pad(self.done_seq, (0, 1), value=self.eos_id), extended], dim=1)
        self.done_score, pick = candidates.topk(k, dim=1)
        self.done_seq = pool.gather(1, pick[..., None].expand(-1, -1, t + 1))
        self.done_count += finishing.sum(dim=1)

        self.alive_score, pick = top_score.masked_fill(ends, float("-inf")).topk(k, dim=1)
        self.alive = extended.gather(1, pick[..., None].expand(-1, -1, t + 1))
        self.stopped |= ((self.done_count >= k)
                         | (self.done_score[:, 0] >= self.alive_score[:, 0] / self.lp(self.max_len)))
        return last or bool(self.stopped.all())


def _check_args(src: torch.Tensor, bos_id: int, eos_id: int, max_len: int) -> None:
    if not isinstance(src, torch.Tensor) or src.ndim != 2:
        raise ValueError(f"src: expected token ids of shape (B, S), got "
                         f"{tuple(src.shape) if isinstance(src, torch.Tensor) else type(src).__name__}")
    for name, value, low in (("bos_id", bos_id, 0), ("eos_id", eos_id, 0), ("max_len", max_len, 1)):
        if not is_int(value, low):
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")


def _cut(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
