"""Greedy and beam-search decoding: equivalences, exactness on tiny spaces, batching, errors."""
import itertools

import pytest
import torch
from torch import nn

from autodropout.models import Encoded, TransformerSeq2Seq, beam_search, classic_seq2seq_dropout, greedy_decode

PAD, BOS, EOS = 0, 1, 2


def model(seed: int, vocab: int = 7, **kwargs) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    m = TransformerSeq2Seq(11, vocab, 16, 1, 2, 2, max_len=16, tie_weights=False, **kwargs).eval()
    # At its small initialisation the decoder barely reads the source; larger weights make outputs
    # differ between sentences and make greedy and beam search disagree, which the tests need.
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.4)
    return m


def sources(seed: int) -> torch.Tensor:
    src = torch.randint(3, 11, (4, 6), generator=torch.Generator().manual_seed(seed))
    src[1, 4:] = PAD
    src[3, 2:] = PAD
    return src


def score(m: nn.Module, src: torch.Tensor, tokens: list[int], max_len: int, alpha: float) -> float:
    """GNMT-normalised log-probability of ``tokens`` (+ EOS unless truncated at max_len), by teacher forcing."""
    target = tokens + ([EOS] if len(tokens) < max_len else [])
    with torch.no_grad():
        log_probs = m(src[None], torch.tensor([[BOS] + target[:-1]])).log_softmax(-1)[0]
    total = log_probs[torch.arange(len(target)), torch.tensor(target)].sum().item()
    return total / ((5 + len(target)) / 6) ** alpha


class Rigged(nn.Module):
    """Step 1: A (0.6) or B (0.4). After A: EOS 0.4, A 0.3, B 0.3. After B: EOS 1.0.
    Greedy takes A and ends with probability 0.6 x 0.4 = 0.24; the best sequence is B (0.4)."""

    A, B = 3, 4

    def encode(self, src: torch.Tensor) -> Encoded:
        return Encoded(torch.zeros(src.shape[0], 1, 1), torch.ones(src.shape[0], 1, dtype=torch.bool))

    def decode(self, prefix: torch.Tensor, encoded: Encoded) -> torch.Tensor:
        probs = torch.full((prefix.shape[0], 5), 1e-9)
        for row, tokens in enumerate(prefix.tolist()):
            if len(tokens) == 1:
                probs[row, [self.A, self.B]] = torch.tensor([0.6, 0.4])
            elif tokens[1] == self.A:
                probs[row, [EOS, self.A, self.B]] = torch.tensor([0.4, 0.3, 0.3])
            else:
                probs[row, EOS] = 1.0
        return probs.log()[:, None, :].expand(-1, prefix.shape[1], -1)


class Scripted(nn.Module):
    """Emits a fixed script per source sentence (chosen by the source's first token), then EOS."""

    SCRIPTS = {5: [3, 4, EOS], 6: [EOS], 7: [4, 4, 4, 4, 4, 4]}

    def encode(self, src: torch.Tensor) -> Encoded:
        return Encoded(src[:, :1, None].float(), torch.ones(src.shape[0], 1, dtype=torch.bool))

    def decode(self, prefix: torch.Tensor, encoded: Encoded) -> torch.Tensor:
        logits = torch.zeros(prefix.shape[0], 1, 8)
        for row, first in enumerate(encoded.states[:, 0, 0].long().tolist()):
            script = self.SCRIPTS[first]
            logits[row, 0, script[min(prefix.shape[1] - 1, len(script) - 1)]] = 10.0
        return logits


def test_beam_finds_what_greedy_misses():
    src = torch.ones(2, 1, dtype=torch.long)
    assert greedy_decode(Rigged(), src, BOS, EOS, max_len=3) == [[Rigged.A]] * 2
    for alpha in (0.0, 0.6):
        assert beam_search(Rigged(), src, BOS, EOS, max_len=3, beam_size=2, length_penalty=alpha) == [[Rigged.B]] * 2


def test_outputs_stop_at_eos_and_are_truncated_at_max_len():
    src = torch.tensor([[5, 9], [6, 9], [7, 9]])
    expected = [[3, 4], [], [4, 4, 4, 4]]
    assert greedy_decode(Scripted(), src, BOS, EOS, max_len=4) == expected
    assert beam_search(Scripted(), src, BOS, EOS, max_len=4, beam_size=3) == expected


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_size_one_is_greedy(seed, alpha):
    m, src = model(seed), sources(seed)
    greedy = greedy_decode(m, src, BOS, EOS, max_len=6)
    assert beam_search(m, src, BOS, EOS, max_len=6, beam_size=1, length_penalty=alpha) == greedy


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_is_exhaustive_search(seed, alpha):
    # Vocabulary {PAD, BOS, EOS, 3, 4}, at most 3 tokens: 1 + 5 + 25 + 125 hypotheses, so a beam
    # of 125 never drops one and must return the best-scoring sequence of all.
    m, src, max_len = model(seed, vocab=5), sources(seed), 3
    found = beam_search(m, src, BOS, EOS, max_len=max_len, beam_size=125, length_penalty=alpha)
    for row, tokens in enumerate(found):
        space = [list(s) for n in range(max_len + 1) for s in itertools.product(range(5), repeat=n) if EOS not in s]
        best = max(score(m, src[row], s, max_len, alpha) for s in space)
        assert score(m, src[row], tokens, max_len, alpha) == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_a_wider_beam_scores_at_least_as_well_as_greedy(seed):
    m, src = model(seed), sources(seed)
    narrow = beam_search(m, src, BOS, EOS, max_len=5, beam_size=1, length_penalty=0.6)
    wide = beam_search(m, src, BOS, EOS, max_len=5, beam_size=40, length_penalty=0.6)
    for row in range(src.shape[0]):
        assert score(m, src[row], wide[row], 5, 0.6) >= score(m, src[row], narrow[row], 5, 0.6) - 1e-6


@pytest.mark.parametrize("seed", range(2))
def test_batched_decoding_equals_one_sentence_at_a_time(seed):
    m, src = model(seed), sources(seed)
    for decode in (lambda s: greedy_decode(m, s, BOS, EOS, 6), lambda s: beam_search(m, s, BOS, EOS, 6, beam_size=3)):
        batched = decode(src)
        singles = [decode(src[i : i + 1, : int((src[i] != PAD).sum())])[0] for i in range(src.shape[0])]
        assert batched == singles


def test_decoding_uses_eval_mode_and_restores_training():
    m = model(1, **classic_seq2seq_dropout(0.5, 1, 2))
    src = sources(1)
    expected = greedy_decode(m, src, BOS, EOS, 6)
    m.train()
    assert greedy_decode(m, src, BOS, EOS, 6) == expected
    assert beam_search(m, src, BOS, EOS, 6, beam_size=1) == expected
    assert m.training


def test_argument_errors():
    m, src = model(0), sources(0)
    with pytest.raises(ValueError, match="beam_size: expected a positive int, got 0"):
        beam_search(m, src, BOS, EOS, 5, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty: expected a number >= 0"):
        beam_search(m, src, BOS, EOS, 5, length_penalty=-1.0)
    with pytest.raises(ValueError, match="max_len: expected an int >= 1, got 0"):
        greedy_decode(m, src, BOS, EOS, 0)
    with pytest.raises(ValueError, match=r"src: expected token ids of shape \(B, S\), got \(6,\)"):
        greedy_decode(m, src[0], BOS, EOS, 5)
