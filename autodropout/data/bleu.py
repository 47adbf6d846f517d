"""Corpus BLEU through sacreBLEU, the score AutoDropout reports for WMT'14 English-French.

The translation reward of the search is ``corpus_bleu(...) / 100`` (docs/architecture.md, step 4 of one trial).
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["corpus_bleu"]


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> float:
    """Corpus-level BLEU in [0, 100] of detokenized ``hypotheses`` against one reference each.

    ``tokenize="13a"`` is sacreBLEU's default and the mteval-v13a tokenization that WMT results
    (the paper's 40.0 on English-French included) are reported with; it splits punctuation but
    keeps hyphenated words such as "vingt-deux" whole. Use ``"intl"`` for text with much non-ASCII
    punctuation, ``"none"`` for text that is already tokenized. BLEU counts n-grams up to 4 over
    the whole corpus, so a corpus made only of sentences shorter than 4 words scores 0 even when
    it is perfect.
    """
    import sacrebleu

    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(seq, str) or not all(isinstance(s, str) for s in seq):
            raise TypeError(f"{name}: expected a sequence of strings, one sentence each")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses / references: expected one reference per hypothesis, got "
            f"{len(hypotheses)} hypotheses and {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("hypotheses: expected at least one sentence")
    valid = sorted(sacrebleu.metrics.BLEU.TOKENIZERS)
    if tokenize not in valid:
        raise ValueError(f"tokenize: unknown {tokenize!r}; valid: {', '.join(valid)}")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)
