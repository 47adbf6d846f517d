"""Connecting to Ray: a local instance by default, or a running cluster with ``--address``."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import ray

from autodropout.errors import UserInputError


class ClusterError(UserInputError, RuntimeError):
    """Ray could not be started or the cluster could not be reached."""


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, float]:
    """Start or join Ray and return the cluster's resources.

    Args:
        address: ``None`` starts a local instance with the machine's CPUs (dashboard off);
            ``"auto"`` or ``"HOST:PORT"`` joins a running cluster (``ray start --head`` / ``ray up``).
        num_cpus: CPUs of the local instance (default: all).
    """
    if ray.is_initialized():
        return ray.cluster_resources()
    # Ray 2.60 warns about token auth on local instances; local runs opt out, clusters keep theirs.
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
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
    return ray.cluster_resources()


@contextmanager
def _sigterm_blocked_in_children() -> Iterator[None]:
    """Start Ray's local processes (GCS, raylet, ...) with SIGTERM blocked: they inherit the mask.

    Ray starts them in the driver's process group, with SIGINT blocked so that Ctrl-C reaches only
    the driver. A SIGTERM sent to the whole group (Slurm, systemd, ``kill -TERM -PGID``) would still
    end them at once, and the trials with them, while the driver is stopping the search cleanly
    (:mod:`autodropout.workers.interrupt`). Blocked, SIGTERM leaves them to the driver, which
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


def check_resources(resources: dict[str, float], cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Fail early, with the numbers, when no node could ever run one trial."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cpus_per_trial > cpus:
        raise ClusterError(f"search.cpus_per_trial={cpus_per_trial} but the cluster has {cpus:g} CPUs")
    if gpus_per_trial > gpus:
        raise ClusterError(f"search.gpus_per_trial={gpus_per_trial} but the cluster has {gpus:g} GPUs")


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
