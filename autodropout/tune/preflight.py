"""Checks before a search starts its trials: can one node run a trial, and can every such node see
the storage the trials write to?

Both answer from Ray's own view of the cluster (``ray.nodes()``: the alive nodes and each one's
resources), so a search that could only wait forever, or whose trials would fail at their first
checkpoint, says so at once in one line (exit status 2) instead.

* Resources: a trial runs on one node, so its ``search.cpus_per_trial`` and ``search.gpus_per_trial``
  must fit one node, not the cluster's totals. On a cluster we joined that has no such node yet, we ask
  Ray's autoscaler for one (``ray.autoscaler.sdk.request_resources``: the demand a driver that refuses
  to start never creates) and wait up to :data:`RESOURCE_WAIT_S` for it to join; a cluster that cannot
  grow is refused when the wait ends, a local instance (which never grows) at once.
* Storage: Ray 2.60 does not copy trial folders between nodes; each trial writes its checkpoints
  straight to the search's storage folder, which must therefore be the same folder on every node.
  On a cluster of more than one node we write a marker file there and ask every node that can run a
  trial whether it sees it. ``search.check_storage: false`` skips this (the user vouches for it).
* ``search.storage_path`` must be a path: Ray would take ``s3://...`` as a URI, but the run folder's
  records (run.json, the trials table, resume, export) read the experiment as local files, so a URI
  would end in a local folder named ``s3:`` (issue 22). Cloud buckets work mounted (s3fs, gcsfuse).
"""
from __future__ import annotations

import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ray

from autodropout.core.errors import ConfigError, UserInputError

if TYPE_CHECKING:
    from autodropout.runs.experiment import SearchConfig

#: How long a search on a cluster we joined waits for the autoscaler to add a node that can run one trial.
RESOURCE_WAIT_S = 900.0
#: How often the wait looks at the cluster again.
POLL_S = 5.0
#: How long the storage check waits for the nodes' answers (each starts a Ray worker process first).
PROBE_TIMEOUT_S = 120.0
#: How long a node looks for the marker file before it says it cannot see it (network file systems
#: may show a new file a moment late).
PROBE_PATIENCE_S = 5.0

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_local = True  # whether the Ray we talk to is a local instance that connect() started (it cannot grow)


class ClusterError(UserInputError, RuntimeError):
    """Ray could not be started, the cluster could not be reached, or it cannot run the search."""


@dataclass(frozen=True)
class Node:
    """One alive Ray node as the checks see it."""

    node_id: str
    cpus: float
    gpus: float
    address: str = ""


def set_local(local: bool) -> None:
    """Record whether the Ray instance just started or joined is local (see :func:`connect`)."""
    global _local
    _local = local


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes with their total CPUs and GPUs, from ``ray.nodes()``."""
    return [Node(n["NodeID"], float(n.get("Resources", {}).get("CPU", 0.0)),
                 float(n.get("Resources", {}).get("GPU", 0.0)), n.get("NodeManagerAddress", ""))
            for n in ray.nodes() if n.get("Alive")]


def fits(node: Node, cpus_per_trial: float, gpus_per_trial: float) -> bool:
    return node.cpus >= cpus_per_trial and node.gpus >= gpus_per_trial


def shortfall(nodes: list[Node], cpus_per_trial: float, gpus_per_trial: float) -> str | None:
    """Why no node of ``nodes`` can run one trial, naming the key (``None``: one can)."""
    if any(fits(n, cpus_per_trial, gpus_per_trial) for n in nodes):
        return None
    if not nodes:
        return "the cluster has no alive node"
    most_cpus, most_gpus = max(n.cpus for n in nodes), max(n.gpus for n in nodes)
    where = f"(largest: {most_cpus:g} CPUs, {most_gpus:g} GPUs; a trial runs on one node)"
    if cpus_per_trial > most_cpus:
        return (f"search.cpus_per_trial={cpus_per_trial} but the cluster has no node with {cpus_per_trial:g} CPUs "
                f"{where}")
    if gpus_per_trial > most_gpus:
        return (f"search.gpus_per_trial={gpus_per_trial} but the cluster has no node with {gpus_per_trial:g} GPUs "
                f"{where}")
    kinds = ", ".join(sorted({f"{n.cpus:g} CPUs + {n.gpus:g} GPUs" for n in nodes}))
    return (f"search.cpus_per_trial={cpus_per_trial} with search.gpus_per_trial={gpus_per_trial}: no node of the "
            f"cluster has both (nodes: {kinds})")


def check_resources(resources: dict[str, float], cpus_per_trial: float, gpus_per_trial: float,
                    wait_s: float | None = None) -> None:
    """Fail early, with the numbers, when no node can run one trial.

    Args:
        resources: the cluster's totals (:func:`connect`'s answer); used as one node when Ray is not
            initialized, else Ray's per-node view decides.
        wait_s: how long to wait for the autoscaler to add such a node; ``None``: not at all on a local
            instance, :data:`RESOURCE_WAIT_S` on a cluster we joined.
    """
    nodes = alive_nodes() if ray.is_initialized() else [Node("", resources.get("CPU", 0.0), resources.get("GPU", 0.0))]
    problem = shortfall(nodes, cpus_per_trial, gpus_per_trial)
    if problem is None:
        return
    wait = (0.0 if _local else RESOURCE_WAIT_S) if wait_s is None else wait_s
    if wait <= 0 or not ray.is_initialized():
        raise ClusterError(problem)
    _wait_for_node(cpus_per_trial, gpus_per_trial, wait, problem)


def _wait_for_node(cpus_per_trial: float, gpus_per_trial: float, wait_s: float, problem: str) -> None:
    """Ask the autoscaler for one trial's node and wait until it has joined, or refuse after ``wait_s``."""
    bundle = {k: v for k, v in (("CPU", cpus_per_trial), ("GPU", gpus_per_trial)) if v > 0}
    print(f"autodropout: {problem}; asked Ray's autoscaler for such a node, waiting up to {wait_s:g} s "
          "(Ctrl-C stops)", file=sys.stderr, flush=True)
    began = time.monotonic()
    _request_resources([bundle])
    try:
        while (left := wait_s - (time.monotonic() - began)) > 0:
            time.sleep(min(POLL_S, left))
            if shortfall(alive_nodes(), cpus_per_trial, gpus_per_trial) is None:
                print(f"autodropout: a node that can run a trial joined after {time.monotonic() - began:.0f} s",
                      file=sys.stderr, flush=True)
                return
    finally:
        # The request would otherwise keep such a node up for the cluster's whole life; from here on
        # Tune's pending trials are the demand (they are placed within seconds, well inside any idle timeout).
        _request_resources([])
    raise ClusterError(f"{problem}, and none joined in {wait_s:g} s of waiting for Ray's autoscaler")


def _request_resources(bundles: list[dict[str, float]]) -> None:
    """``ray.autoscaler.sdk.request_resources`` (a hint a cluster without autoscaler ignores; [] clears it)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


def check_cluster(resources: dict[str, float], search: SearchConfig, folder: Path) -> None:
    """Both checks for a search whose Tune experiment goes in ``folder`` (:func:`storage_folder`):
    resources first, since waiting for the autoscaler may add the nodes the storage check asks."""
    check_resources(resources, search.cpus_per_trial, search.gpus_per_trial)
    check_shared_storage(search, folder)


def storage_folder(search: SearchConfig, run_path: str | Path) -> Path:
    """The folder a new search's Tune experiment goes in (``search.storage_path``, else the run folder),
    as :meth:`RunDir.create` places it; a URI is refused in one line."""
    storage = search.storage_path
    if storage is not None and _URI.match(storage):
        raise ConfigError(f"search.storage_path: {storage!r} is a URI, which autodropout does not support; "
                          "give a folder that every node mounts (for a bucket: s3fs, gcsfuse, or an NFS/EFS share)")
    return Path(storage).expanduser().resolve() if storage else Path(run_path).resolve()


def check_shared_storage(search: SearchConfig, folder: Path) -> None:
    """Refuse a search on several nodes whose trials could not all write to ``folder``.

    Every alive node that can run a trial is asked (a zero-CPU Ray task pinned to it) whether it sees
    a marker file written here; nodes that do not answer within :data:`PROBE_TIMEOUT_S` are named in a
    warning. One node, or ``search.check_storage: false``, skips the check.
    """
    if not search.check_storage or not ray.is_initialized():
        return
    nodes = alive_nodes()
    if len(nodes) < 2:
        return
    runners = [n for n in nodes if fits(n, search.cpus_per_trial, search.gpus_per_trial)]
    probe_dir = next(p for p in (folder, *folder.parents) if p.exists())  # the run folder may not exist yet
    marker = probe_dir / f".autodropout-storage-check-{uuid.uuid4().hex}"
    try:
        marker.write_bytes(b"")
    except OSError as exc:
        raise ConfigError(f"search.storage_path: cannot write to {probe_dir}: {exc.strerror or exc}") from None
    try:
        seen = probe_nodes(runners, str(marker))
    finally:
        marker.unlink(missing_ok=True)
    blind = [n.address or n.node_id for n in runners if seen.get(n.node_id) is False]
    silent = [n.address or n.node_id for n in runners if n.node_id not in seen]
    if blind:
        what = (f"search.storage_path={str(folder)!r}" if search.storage_path else
                f"search.storage_path is not set, so the trials write into the run folder {str(folder)!r}, and it")
        raise ClusterError(f"{what} is not visible from {len(blind)} of the {len(runners)} nodes that can run a trial "
                           f"({', '.join(blind)}): put it on storage every node mounts (NFS, EFS), or set "
                           "search.check_storage: false if they do see it")
    if silent:
        print(f"autodropout: {len(silent)} node(s) did not say within {PROBE_TIMEOUT_S:g} s whether they see "
              f"{folder} ({', '.join(silent)}); their trials fail at their first checkpoint if they do not",
              file=sys.stderr, flush=True)


def probe_nodes(nodes: list[Node], path: str) -> dict[str, bool]:
    """Whether each node sees ``path``, by node id (nodes that do not answer in time are left out)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    look = ray.remote(num_cpus=0, max_retries=0)(_sees)
    refs = {look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            .remote(path, PROBE_PATIENCE_S): n.node_id for n in nodes}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    answers = {}
    for ref in ready:
        try:
            answers[refs[ref]] = bool(ray.get(ref))
        except ray.exceptions.RayError:
            pass  # a node that died meanwhile: no answer, as for one that is too slow
    return answers


def _sees(path: str, patience: float) -> bool:
    """On a node: whether ``path`` exists there, looking again for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return True
