"""docker/: the cluster templates pass the schemas their tools check them against, and do what a search
on a real cluster needs (issue 22, point 3); the image's torch is built for the base image's CUDA.

* ``ray-cluster.yaml`` against Ray's own ``ray/autoscaler/ray-schema.json`` from the installed wheel,
  after ``prepare_config`` (defaults merged), as ``ray up`` validates it.
* ``kuberay-rayjob.yaml`` against the RayJob CRD's OpenAPI schema of KubeRay v1.7.0, kept beside this
  file with its source and commit, with unknown fields refused as ``kubectl apply`` (strict field
  validation, its default) refuses them. The CRD's CEL rules (``x-kubernetes-validations``, on
  ``deletionStrategy`` and ``managedBy``, which the template does not use) are not evaluated here.

Neither template is started here (no cloud, no Kubernetes, no Docker engine): docs/search.md says so.
"""
import copy
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from autodropout.commands.cli import build_parser
from autodropout.runs.experiment import find_experiment

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SHARED = "/mnt/shared"
CRD_COPY = Path(__file__).with_name("kuberay_v1.7.0_rayjob_v1_schema.json")
#: AWS's public parameter naming its current Deep Learning Base AMI with NVIDIA's driver, Docker and NVIDIA's
#: container toolkit (Ubuntu 22.04, x86_64).
DLAMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
#: Ray's default AMIs (CUDA 11.2), read from its source: importing it needs boto3, which Ray does not bring.
RAY_DEFAULT_AMIS = set(re.findall(r'"(ami-[0-9a-f]+)"', (Path(ray.__file__).parent / "autoscaler" / "_private" / "aws"
                                                         / "config.py").read_text()))


def launcher() -> dict:
    return yaml.safe_load((DOCKER / "ray-cluster.yaml").read_text())


def rayjob() -> dict:
    return yaml.safe_load((DOCKER / "kuberay-rayjob.yaml").read_text())


def search_args(command: str):
    """An ``autodropout search ...`` command line as the CLI parses it (a bad flag fails the test)."""
    words = command.split()
    assert words[:2] == ["autodropout", "search"], command
    return build_parser().parse_args(words[1:])


# -- the cluster launcher ---------------------------------------------------------------------------
def test_the_launcher_template_passes_rays_schema():
    validate_config(prepare_config(launcher()))


def test_rays_schema_check_can_fail():
    config = launcher()
    config["available_node_types"]["gpu_worker"]["min_worker"] = 0  # a typo
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_the_launcher_mounts_shared_storage_on_every_host_and_binds_it_into_the_container():
    config = launcher()
    mounts = [c for c in config["initialization_commands"] if re.search(r"\bmount -t nfs4?\b", c)]
    assert len(mounts) == 1 and mounts[0].rstrip().endswith(f" {SHARED}")
    assert f"-v {SHARED}:{SHARED}" in config["docker"]["run_options"]


def test_the_launcher_sets_a_current_gpu_machine_image():
    for name, node_type in launcher()["available_node_types"].items():
        image = node_type["node_config"]["ImageId"]
        assert RAY_DEFAULT_AMIS and image not in RAY_DEFAULT_AMIS, name  # Ray's default: CUDA 11.2
        assert image == f"resolve:ssm:{DLAMI}"


def test_the_launchers_gpu_workers_start_from_zero_and_every_node_requires_the_token():
    config = launcher()
    assert config["available_node_types"]["gpu_worker"]["min_workers"] == 0  # the search's wait asks for them
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[key] if "ray start" in c]
        assert len(start) == 1 and "RAY_AUTH_MODE=token" in start[0] and "RAY_AUTH_TOKEN_PATH=" in start[0], key


def test_the_launchers_example_commands_keep_everything_on_shared_storage():
    lines = [line for line in (DOCKER / "ray-cluster.yaml").read_text().splitlines() if "'autodropout search" in line]
    new, resume = (search_args(re.search(r"'(autodropout search[^']*)'", line).group(1)) for line in lines)
    assert str(new.output).startswith(SHARED) and new.address == "auto" and new.experiment.startswith(SHARED)
    assert resume.resume == new.output and resume.address == "auto"
    # The preset it copies already puts the trials' checkpoints on the shared file system.
    assert find_experiment("cifar10_wrn28_2_search").search.storage_path.startswith(SHARED + "/")


# -- KubeRay ----------------------------------------------------------------------------------------
def strict(schema):
    """The CRD's schema with unknown fields refused wherever Kubernetes prunes or rejects them (objects
    with ``properties`` that neither allow extra ones nor preserve unknown fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k == "enum" else strict(v)) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def rayjob_validator():
    kept = json.loads(CRD_COPY.read_text())
    assert kept["kuberay_version"] == "v1.7.0" and kept["source"].endswith("ray.io_rayjobs.yaml")
    # The template's apiVersion is the CRD version the schema is of.
    assert rayjob()["apiVersion"] == f"ray.io/{kept['version']}"
    schema = strict(kept["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # validated by the API server itself, not the CRD
    return jsonschema.Draft7Validator(schema)


def test_the_rayjob_template_passes_the_crd_schema(rayjob_validator):
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in rayjob_validator.iter_errors(rayjob())]
    assert not errors, errors


@pytest.mark.parametrize("path,value", [
    (("spec", "shutdownAfterJobFinish"), True),  # a typo: an unknown field
    (("spec", "rayClusterSpec", "workerGroupSpecs", 0, "replicas"), "0"),  # the wrong type
    (("spec", "rayClusterSpec", "authOptions", "mode"), "tokens"),  # not in the enum
])
def test_the_crd_schema_check_can_fail(rayjob_validator, path, value):
    doc = copy.deepcopy(rayjob())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(rayjob_validator.iter_errors(doc))


def test_the_rayjob_autoscales_gpu_workers_keeps_auth_on_and_mounts_shared_storage():
    spec = rayjob()["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] and cluster["authOptions"]["mode"] == "token"
    assert cluster["rayVersion"] == "2.60.0" and spec["backoffLimit"] >= 1
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert cluster["workerGroupSpecs"][0]["minReplicas"] == 0
    for group in groups:
        pod = group["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        for container in pod["containers"]:
            assert {m["mountPath"]: claims[m["name"]] for m in container["volumeMounts"]}[SHARED]


def test_the_rayjob_entrypoint_starts_a_run_then_resumes_it(tmp_path):
    """Run as Ray's job supervisor runs it (a shell), with a stand-in ``autodropout`` that records its
    arguments and /mnt/shared moved into a temporary folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "autodropout"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    fake.chmod(0o755)
    shared = tmp_path / "shared"
    entrypoint = rayjob()["spec"]["entrypoint"].replace(SHARED, str(shared))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def submit() -> str:
        subprocess.run(["sh", "-c", entrypoint], env=env, check=True, timeout=30)
        return (tmp_path / "calls").read_text().splitlines()[-1]

    first = search_args("autodropout " + submit())
    assert first.resume is None and str(first.output) == f"{shared}/runs/cifar10" and first.address == "auto"
    (shared / "runs" / "cifar10").mkdir(parents=True)
    (shared / "runs" / "cifar10" / "run.json").write_text("{}")  # what the first attempt left
    again = search_args("autodropout " + submit())
    assert str(again.resume) == f"{shared}/runs/cifar10" and again.address == "auto"


# -- the image --------------------------------------------------------------------------------------
def test_the_images_torch_is_built_for_the_base_images_cuda():
    text = (DOCKER / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:(\S+)-py(\d+)-cu(\d+)\s*$", text, re.M)
    index = re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu(\d+)\s*$", text, re.M)
    assert base and index, "an explicit -cuXYZ base tag (not the -gpu alias) and a torch index of a CUDA build"
    assert base.group(3) == index.group(1)
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert base.group(1) == pins["ray"]  # the image's Ray is the pinned one
    # torch comes from that index at the pinned version (constraints.txt is copied and used).
    assert re.search(r"pip install [^&]*-c constraints\.txt [^&]*--index-url \"\$TORCH_INDEX_URL\" torch", text)
    assert re.search(r"^COPY .*constraints\.txt", text, re.M)
