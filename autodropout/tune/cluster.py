"""Connecting to Ray: a local instance by default, or a running cluster with ``--address``.

Before a search starts its trials, :func:`check_cluster` makes sure the cluster can run them at all
(:mod:`autodropout.tune.preflight`: one node that fits a trial, storage every such node sees).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from autodropout.tune.preflight import (
    ClusterError,
    check_cluster,
    check_resources,
    check_shared_storage,
    set_local,
    storage_folder,
)

__all__ = ["ClusterError", "check_cluster", "check_resources", "check_shared_storage", "connect", "storage_folder"]


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, float]:
    """Start or join Ray and return the cluster's resources.

    Args:
        address: ``None`` starts a local instance with the machine's CPUs (dashboard off);
            ``"auto"`` or ``"HOST:PORT"`` joins a running cluster (``ray start --head`` / ``ray up``).
        num_cpus: CPUs of the local instance (default: all).
    """
    if ray.is_initialized():
        return ray.cluster_resources()
    if address is None:
        # Ray 2.60 turns token authentication on for a new local instance (its token: ~/.ray/auth_token,
        # made on first use, or RAY_AUTH_TOKEN) and warns that it did. Only the warning goes: without the
        # token Ray's services, which listen on every interface, run code for anyone who reaches them.
        # (Setting RAY_AUTH_MODE=token here instead would not do: Ray read its config at import, so it
        # would make no token while the services it starts demand one.) A user's own RAY_AUTH_MODE wins.
        _quiet_auth_notice()
        # The raylet starts workers at nice 15 (RayConfig worker_niceness): on a machine shared with any
        # normal-priority process the trials, which are the whole job, then get almost no CPU (measured:
        # 3% each beside two busy processes). A local search is the user's foreground work.
        os.environ.setdefault("RAY_worker_niceness", "0")
    # Per-epoch checkpoints of short trials are the design, not a bottleneck worth a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's new console output ignores verbose=0 for its start banner, whose TensorBoard hint
    # points into Ray's session folder; our own progress lines and summary replace it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Worker stdout (Tune's checkpoint chatter) stays in the trial logs; failures reach the user
    # through the progress lines and each trial's error.txt.
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if address not in (None, "auto"):
        _check_reachable(address)
    try:
        if address is None:
            # "local" always starts a new instance: plain ray.init() would join whatever cluster
            # `ray start` last recorded on this machine, even a dead one.
            with _sigterm_blocked_in_children():
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address!r}"
        raise ClusterError(f"could not connect to {where}: {exc}") from None
    set_local(address is None)  # a local instance never grows: the resource check need not wait
    return ray.cluster_resources()


class _AuthEnabledNotice(logging.Filter):
    """Drops Ray's notice that token authentication is on, the default we keep (nothing else)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_auth_notice() -> None:
    # The logger of ray/_private/authentication/authentication_token_setup.py; should Ray rename it,
    # the notice merely shows again.
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _AuthEnabledNotice) for f in log.filters):
        log.addFilter(_AuthEnabledNotice())


@contextmanager
def _sigterm_blocked_in_children() -> Iterator[None]:
    """Start Ray's local processes (GCS, raylet, ...) with SIGTERM blocked: they inherit the mask.

    Ray starts them in the driver's process group, with SIGINT blocked so that Ctrl-C reaches only
    the driver. A SIGTERM sent to the whole group (Slurm, systemd, ``kill -TERM -PGID``) would still
    end them at once, and the trials with them, while the driver is stopping the search cleanly
    (:mod:`autodropout.tune.interrupt`). Blocked, SIGTERM leaves them to the driver, which
    stops them when it exits (Ray then kills them after a one-second grace period each).
    A SIGTERM that arrives for the driver meanwhile is delivered when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """ray.init retries an unreachable HOST:PORT for minutes; a TCP probe fails in seconds."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected 'auto' or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(f"could not reach the Ray cluster at {address!r}: {exc}") from None
