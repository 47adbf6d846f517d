"""Helpers the tests share: the CLI in a subprocess, the trial of given tokens, and the tokens of a
searcher's suggestion."""
from __future__ import annotations

import subprocess
from typing import Any

from autodropout.runs import Trial
from autodropout.search_spaces import SearchSpace, pattern_from_json
from autodropout.tasks import Regularization
from tests.conftest import PYTHON


def autodropout(*args: Any, env: dict[str, str], timeout: float = 600,
                check: bool = True) -> subprocess.CompletedProcess:
    """``autodropout ARGS`` in a subprocess with ``env``; unless ``check`` is off, a non-zero exit fails
    the test with the command's output."""
    proc = subprocess.run([PYTHON, "-m", "autodropout.commands.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


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
