"""The checks before a search's trials start, against fake views of a cluster (``ray.nodes()`` mocked):
a trial must fit one node (autoscaling clusters are waited for), storage must be seen by every node
that can run a trial, and ``search.storage_path`` must be a path."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from autodropout.core.errors import ConfigError
from autodropout.runs.experiment import SearchConfig
from autodropout.tune import preflight
from autodropout.tune.preflight import ClusterError, Node, check_resources, check_shared_storage, storage_folder


def ray_node(node_id: str, cpus: float, gpus: float = 0.0, alive: bool = True) -> dict:
    """One entry of ``ray.nodes()`` as Ray 2.60 returns it (the fields the checks read)."""
    resources = {"CPU": cpus, "memory": 1e9, **({"GPU": gpus} if gpus else {})}
    return {"NodeID": node_id, "Alive": alive, "Resources": resources, "NodeManagerAddress": f"10.0.0.{node_id}"}


@pytest.fixture
def cluster(monkeypatch):
    """A fake joined cluster: set ``views`` to the successive answers of ``ray.nodes()`` (the last repeats);
    ``requests`` records what was asked of the autoscaler."""
    state = {"views": [[]], "calls": 0, "requests": []}

    def nodes():
        state["calls"] += 1
        return state["views"][min(state["calls"] - 1, len(state["views"]) - 1)]

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "nodes", nodes)
    monkeypatch.setattr(preflight, "_request_resources", state["requests"].append)
    monkeypatch.setattr(preflight, "POLL_S", 0.01)
    monkeypatch.setattr(preflight, "_local", False)
    return state


def test_a_trial_must_fit_one_node_not_the_cluster_totals(cluster):
    cluster["views"] = [[ray_node("1", 4), ray_node("2", 4)]]  # 8 CPUs in all
    with pytest.raises(ClusterError, match=r"search.cpus_per_trial=8.0 but the cluster has no node with 8 CPUs "
                                           r"\(largest: 4 CPUs, 0 GPUs; a trial runs on one node\)"):
        check_resources({"CPU": 8.0}, 8.0, 0.0, wait_s=0)
    check_resources({"CPU": 8.0}, 4.0, 0.0, wait_s=0)
    # Dead nodes do not count; a GPU on one node and the CPUs on another are no node for the trial.
    cluster["views"] = [[ray_node("1", 8), ray_node("2", 2, gpus=1), ray_node("3", 16, gpus=8, alive=False)]]
    with pytest.raises(ClusterError, match=r"search.cpus_per_trial=4.0 with search.gpus_per_trial=1.0: no node of "
                                           r"the cluster has both \(nodes: 2 CPUs \+ 1 GPUs, 8 CPUs \+ 0 GPUs\)"):
        check_resources({}, 4.0, 1.0, wait_s=0)
    assert cluster["requests"] == []  # no wait, no demand


def test_a_local_instance_is_refused_at_once(cluster, monkeypatch):
    monkeypatch.setattr(preflight, "_local", True)
    cluster["views"] = [[ray_node("1", 2)]]
    with pytest.raises(ClusterError, match="search.gpus_per_trial=1.0 but the cluster has no node with 1 GPUs"):
        check_resources({}, 1.0, 1.0)  # wait_s=None: a local instance never grows
    assert cluster["requests"] == [] and cluster["calls"] == 1


def test_an_autoscaling_cluster_is_asked_for_a_node_and_waited_for(cluster, capsys):
    # The launcher template's cluster: a CPU head, GPU workers from zero. The third look finds one.
    head, gpu = ray_node("1", 8), ray_node("2", 4, gpus=1)
    cluster["views"] = [[head], [head], [head, gpu]]
    check_resources({"CPU": 8.0}, 4.0, 1.0, wait_s=30)
    # The demand that lets the autoscaler act, then cleared (Tune's pending trials take over).
    assert cluster["requests"] == [[{"CPU": 4.0, "GPU": 1.0}], []]
    err = capsys.readouterr().err
    assert "asked Ray's autoscaler for such a node, waiting up to 30 s" in err and "joined after" in err


def test_a_cluster_that_does_not_grow_is_refused_when_the_wait_ends(cluster):
    cluster["views"] = [[ray_node("1", 8)]]
    with pytest.raises(ClusterError, match=r"no node with 1 GPUs .*, and none joined in 0.05 s of waiting"):
        check_resources({}, 1.0, 1.0, wait_s=0.05)
    assert cluster["requests"] == [[{"CPU": 1.0, "GPU": 1.0}], []]  # cleared on refusal too
    assert preflight.RESOURCE_WAIT_S >= 600  # by default a joined cluster gets time to boot a GPU node


@pytest.mark.parametrize("uri", ["s3://bucket/runs", "gs://bucket/x", "file:///mnt/shared", "hdfs://nn:8020/x"])
def test_a_storage_uri_is_refused_in_one_line_naming_the_key(uri, tmp_path):
    with pytest.raises(ConfigError) as info:
        storage_folder(SearchConfig(storage_path=uri), tmp_path / "run")
    message = str(info.value)
    assert message.startswith(f"search.storage_path: {uri!r} is a URI") and "\n" not in message


def test_storage_folder_is_where_the_run_puts_its_tune_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_folder(SearchConfig(), Path("runs/x")) == tmp_path / "runs" / "x"
    assert storage_folder(SearchConfig(storage_path="shared/a"), Path("runs/x")) == tmp_path / "shared" / "a"


@pytest.fixture
def probes(cluster, monkeypatch):
    """Fake answers of the nodes to the storage probe: node id -> sees the marker (absent: no answer)."""
    answers: dict[str, bool] = {}
    asked: list[tuple[list[str], str]] = []

    def probe(nodes, path):
        assert Path(path).exists()  # the marker is there while the nodes look
        asked.append(([n.node_id for n in nodes], path))
        return {n.node_id: answers[n.node_id] for n in nodes if n.node_id in answers}

    monkeypatch.setattr(preflight, "probe_nodes", probe)
    return answers, asked


def test_storage_a_node_cannot_see_is_refused(cluster, probes, tmp_path):
    answers, asked = probes
    cluster["views"] = [[ray_node("1", 8), ray_node("2", 8), ray_node("3", 8)]]
    answers.update({"1": True, "2": False, "3": True})
    shared = tmp_path / "shared" / "autodropout"  # not made yet: the nearest folder that exists is probed
    search = SearchConfig(storage_path=str(shared))
    refused = (r"search.storage_path='.*shared/autodropout' is not visible from 1 of the 3 nodes that can run a trial "
               r"\(10.0.0.2\): .*search.check_storage: false")
    with pytest.raises(ClusterError, match=refused):
        check_shared_storage(search, shared)
    assert asked[0][1].startswith(str(tmp_path) + "/.autodropout-storage-check-")
    assert not list(tmp_path.glob(".autodropout-storage-check-*"))  # the marker is removed
    # Ray's default for an unset storage_path is the run folder on the driver's disk: named as such.
    with pytest.raises(ClusterError, match="search.storage_path is not set, so the trials write into the run folder"):
        check_shared_storage(SearchConfig(), tmp_path)
    # The user's word.
    check_shared_storage(SearchConfig(check_storage=False), tmp_path)
    assert len(asked) == 2


def test_shared_storage_passes_and_only_nodes_that_can_run_a_trial_are_asked(cluster, probes, tmp_path, capsys):
    answers, asked = probes
    # A CPU head without the mount never runs a GPU trial; node 3 does not answer in time.
    cluster["views"] = [[ray_node("1", 8), ray_node("2", 4, gpus=1), ray_node("3", 4, gpus=1)]]
    answers.update({"1": False, "2": True})
    check_shared_storage(SearchConfig(cpus_per_trial=4, gpus_per_trial=1), tmp_path)
    assert asked[0][0] == ["2", "3"]
    assert "1 node(s) did not say" in capsys.readouterr().err


def test_one_node_needs_no_storage_check(cluster, probes, tmp_path):
    cluster["views"] = [[ray_node("1", 8)]]
    check_shared_storage(SearchConfig(), tmp_path)
    assert probes[1] == []


def test_the_probe_runs_on_each_node_of_a_real_local_instance(tmp_path):
    """The probe's Ray side (a zero-CPU task pinned to the node) on this machine's one node."""
    marker = tmp_path / "marker"
    marker.write_text("")
    script = ("import sys; from autodropout.tune import preflight as p; "
              "from autodropout.tune.cluster import connect; connect(num_cpus=1); nodes = p.alive_nodes(); "
              "print(p.probe_nodes(nodes, sys.argv[1]) == {nodes[0].node_id: True}, "
              "p.probe_nodes(nodes, sys.argv[1] + '.absent') == {nodes[0].node_id: False})")
    # Ray's default protection on (the token goes to this test's own home folder).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script, str(marker)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "True"]


def test_nodes_come_from_ray_nodes(cluster):
    cluster["views"] = [[ray_node("a", 2, gpus=1), ray_node("b", 3, alive=False)]]
    assert preflight.alive_nodes() == [Node("a", 2.0, 1.0, "10.0.0.a")]


def test_node_kinds_in_messages_are_sorted_and_distinct():
    nodes = [Node(str(i), 8, 0) for i in range(3)] + [Node("g", 2, 1)]
    assert preflight.shortfall(nodes, 4, 1).endswith("(nodes: 2 CPUs + 1 GPUs, 8 CPUs + 0 GPUs)")
    assert preflight.shortfall(nodes, 2, 1) is None and preflight.shortfall([], 1, 0) == "the cluster has no alive node"
