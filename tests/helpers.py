"""Helpers the tests share: the trial of given tokens, and the tokens of a searcher's suggestion."""
from __future__ import annotations

from typing import Any

from autodropout.runs import Trial
from autodropout.search_spaces import SearchSpace, pattern_from_json
from autodropout.tasks import Regularization


def trial_for_tokens(task: Any, space: SearchSpace, tokens: list[int], seed: int) -> Trial:
    """The trial of a searcher's suggestion: the pattern ``tokens`` decode to in ``space``."""
    return Trial(task, Regularization(pattern=space.decode(tokens)), seed, space)


def suggested_tokens(searcher: Any, trial_id: str) -> list[int] | None:
    """The tokens of ``searcher``'s suggestion for ``trial_id`` (``None`` when it suggests nothing), read
    back from the pattern the suggestion carries."""
    config = searcher.suggest(trial_id)
    if config is None:
        return None
    return searcher.space.encode(pattern_from_json(searcher.space, config["pattern"], config.get("embeddings", [])))
