"""A local search's Ray keeps Ray 2.60's token authentication on (issue 22, point 8): its GCS and raylet
refuse a client without the token, accept one with it, and the notice Ray prints about it is gone.

The clients speak gRPC to the services directly (the calls ``ray.init`` makes first), so a refusal is
the server's, not a client giving up on a missing token of its own. The Ray instance runs in a
subprocess with its own home folder: Ray makes its token at ``~/.ray/auth_token`` there.
"""
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, node_manager_pb2, node_manager_pb2_grpc

from tests.conftest import PYTHON
from tests.tiny import write_experiment

#: Started with the project's own connect(); prints where its services listen, then waits for stdin to close.
SERVER = """
import sys, ray
from autodropout.tune.cluster import connect
connect(num_cpus=1)
node = ray._private.worker.global_worker.node
print(node.gcs_address, node.node_ip_address, node.node_manager_port, flush=True)
sys.stdin.read()
"""


def auth_env(home: Path) -> dict[str, str]:
    """The environment of a user who set nothing about Ray's authentication, with ``home`` as HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = subprocess.Popen([PYTHON, "-c", SERVER], env=auth_env(home), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line, server.stderr.read()[-3000:]
        gcs, ip, raylet_port = line.split()
        yield {"gcs": gcs, "raylet": f"{ip}:{raylet_port}", "token": (home / ".ray" / "auth_token").read_text().strip(),
               "server": server}
    finally:
        server.stdin.close()  # connect()'s Ray ends with its driver
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def call(method: str, address: str, token: str | None) -> grpc.StatusCode:
    """The status of one call to the GCS (``cluster_id``) or the raylet (``node_stats``)."""
    metadata = [] if token is None else [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(address) as channel:
        try:
            if method == "cluster_id":
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), metadata=metadata, timeout=20)
            else:
                node_manager_pb2_grpc.NodeManagerServiceStub(channel).GetNodeStats(
                    node_manager_pb2.GetNodeStatsRequest(), metadata=metadata, timeout=20)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method,service", [("cluster_id", "gcs"), ("node_stats", "raylet")])
def test_a_client_without_the_token_is_refused(local_ray, method, service):
    address = local_ray[service]
    assert call(method, address, None) == grpc.StatusCode.UNAUTHENTICATED
    assert call(method, address, "not-the-token") == grpc.StatusCode.UNAUTHENTICATED
    assert call(method, address, local_ray["token"]) == grpc.StatusCode.OK  # the refusal is about the token


def test_the_auth_notice_is_silenced_not_the_protection(local_ray):
    assert len(local_ray["token"]) >= 32  # Ray made a token for this instance
    local_ray["server"].stdin.close()
    local_ray["server"].wait(timeout=60)
    err = local_ray["server"].stderr.read()
    assert local_ray["server"].returncode == 0, err[-3000:]
    assert "Token authentication" not in err, err[-3000:]  # neither "is enabled" nor "is disabled"


@pytest.mark.slow
def test_a_whole_search_runs_with_authentication_on(tmp_path):
    """The product's default, which the other end-to-end tests switch off (tests/conftest.py's cli_env)."""
    experiment = write_experiment(tmp_path, {"search": {"trials": 2, "concurrency": 2}})
    command = [PYTHON, "-m", "autodropout.commands.cli", "search", str(experiment), "--output", str(tmp_path / "run")]
    proc = subprocess.run(command,
                          env={**auth_env(tmp_path / "home"), "AUTODROPOUT_CACHE": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search finished: 2 trials (0 failed)" in proc.stdout
    assert (tmp_path / "home" / ".ray" / "auth_token").exists() and "Token authentication" not in proc.stderr


def test_product_code_never_switches_authentication_off():
    root = Path(__file__).resolve().parents[2] / "autodropout"
    off = re.compile(r"""RAY_AUTH_MODE["']?\s*[,=:]\s*["']?disabled""")  # setdefault("RAY_AUTH_MODE", "disabled"), ...
    offenders = [p for p in root.rglob("*.py") if off.search(p.read_text())]
    assert not offenders, offenders

