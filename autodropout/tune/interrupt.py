"""Stopping a search cleanly on SIGINT (Ctrl-C) and SIGTERM (``kill``, Slurm, systemd).

Ray Tune 2.60 handles a stop request itself: ``tune.run`` (``ray/tune/tune.py``,
``_setup_signal_catching``) installs a handler that sets an "experiment interrupted" event; the
tuning loop then ends after its current step, writes the experiment state one last time
(``runner.checkpoint(force=True, wait=True)``: trial statuses and the searcher state), stops the
trial actors and *returns normally*, with the running trials still recorded as running, so that
``Tuner.restore`` re-runs them. That handler listens to SIGINT (unless ``TUNE_DISABLE_SIGINT_HANDLER``
is set) and always to SIGUSR1, never to SIGTERM, and a caller cannot tell from ``Tuner.fit``'s
result that it was interrupted.

So the search installs its own handler for SIGINT and SIGTERM (with Tune's SIGINT handler off) that,
once the tuning loop is about to run (``armed``), records the signal and calls Tune's SIGUSR1
handler, the same clean stop; a running trial keeps its latest checkpoint and is resumed from it.
Before that (Ray starting, data loading) and on a second signal it stops at once
(``KeyboardInterrupt``; a run folder is then as after ``kill -9``, which ``--resume`` also
handles). A request that comes before Tune has installed its handler (while Ray starts) is passed on
by :class:`ForwardStop` at the first step of the tuning loop.

SIGTERM sent to the whole process group (Slurm, systemd) also reaches the local Ray instance's own
processes (GCS, raylet), which Ray starts in the driver's group; they would exit and take the trials
with them. :func:`~autodropout.tune.cluster.connect` therefore starts them with SIGTERM blocked,
as Ray itself starts them with SIGINT blocked so that Ctrl-C reaches only the driver.
"""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune import Callback

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Tune's own messages about the stop, which name Tune's API (``Tuner.restore(path=...)``) instead of
#: ``autodropout search --resume``, and list the trials it left running as if they had failed.
_TUNE_STOP_MESSAGES = ("Stop signal received", "Experiment has been interrupted", "Trials did not complete")


class _State:
    """The process's stop request (signals are per process, so is this). ``armed``: Tune's loop is
    (about to be) running, so a request stops it cleanly; before that, a request stops at once."""

    signal: int | None = None
    forwarded = False
    armed = False


STATE = _State()


def requested() -> int | None:
    """The signal that asked the current search to stop, or ``None``."""
    return STATE.signal


def _forward() -> None:
    """Ask Tune's loop to stop, through the handler Tune installed for SIGUSR1 (if it has)."""
    handler = signal.getsignal(signal.SIGUSR1)
    if STATE.signal is not None and not STATE.forwarded and callable(handler):
        STATE.forwarded = True
        handler(signal.SIGUSR1, None)


def _on_signal(signum: int, frame: Any) -> None:
    if STATE.signal is not None or not STATE.armed:
        raise KeyboardInterrupt  # a second request, or nothing started yet: stop now
    STATE.signal = signum
    _forward()


class _DropTuneStopMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TUNE_STOP_MESSAGES)


@contextmanager
def stop_on_signals() -> Iterator[_State]:
    """Within the block, SIGINT and SIGTERM ask Tune to stop cleanly (see the module docstring)."""
    STATE.signal, STATE.forwarded, STATE.armed = None, False, False
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    log_filter = _DropTuneStopMessages()
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(log_filter)
    for sig in _SIGNALS:
        signal.signal(sig, _on_signal)
    try:
        yield STATE
    finally:
        STATE.armed = False
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        tune_logger.removeFilter(log_filter)
        if env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = env


class ForwardStop(Callback):
    """Passes on a stop request that came before Tune's handler existed (at each loop step; cheap)."""

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        _forward()
