"""The cluster recipes in cluster/, checked offline.

The launcher config goes through Ray's own preparation and schema validation
(what ``ray up`` runs first). The KubeRay and Kubernetes manifests are checked
against the rules their CRDs and the Kubernetes API enforce that matter here
(types, names, resources, versions), and against each other and this project
(the image's Ray version, the entrypoint parsing with tune-service's CLI, the
tracking server the nodes point at).
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import ray
import yaml

from tune_service.cli import _parser

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_all(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d]


# --------------------------------------------------------------------------- Ray cluster launcher


def launcher_config() -> dict:
    return yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())


def validate_launcher(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_the_aws_launcher_config_passes_rays_own_validation():
    prepared = validate_launcher(launcher_config())
    assert prepared["head_node_type"] in prepared["available_node_types"]
    assert prepared["available_node_types"]["head"]["resources"] == {"CPU": 0, "GPU": 0}  # no trials on the head


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["available_node_types"]["gpu_worker"].update(resourcez={}),  # an unknown key
        lambda c: c.update(max_workers="four"),  # a wrong type
        lambda c: c["provider"].update(type="awz"),  # no such provider
    ],
    ids=["unknown-key", "wrong-type", "bad-provider"],
)
def test_rays_validation_bites(breakage):
    config = launcher_config()
    breakage(config)
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's ValidationError or Ray's NotImplementedError
        validate_launcher(config)


def test_the_launcher_nodes_run_this_ray_with_token_auth_and_a_private_dashboard():
    config = launcher_config()
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    for commands in (head, workers):
        assert "RAY_AUTH_MODE=token" in commands and "RAY_AUTH_TOKEN_PATH=" in commands
        assert "TUNE_SERVICE_STORAGE_PATH=s3://" in commands  # shared storage: checkpoints survive nodes
    assert "--dashboard-host=127.0.0.1" in head  # reached through `ray dashboard` (SSH), not the network
    token_mount = config["file_mounts"]["/home/ray/.ray/auth_token"]
    assert token_mount == "~/.ray/auth_token"
    assert any("constraints.txt" in c and "tune-service" in c for c in config["setup_commands"])


def test_the_image_builds_on_this_ray():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert base == f"rayproject/ray:{ray.__version__}-py311-gpu"
    constraints = (CLUSTER.parent / "constraints.txt").read_text()
    assert f"ray=={ray.__version__}" in constraints


# --------------------------------------------------------------------------- KubeRay and Kubernetes


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def check_cluster_spec(spec: dict) -> list[dict]:
    """A RayClusterSpec as KubeRay's CRD types it; returns every container."""
    assert spec["rayVersion"] == ray.__version__
    if "authOptions" in spec:
        assert spec["authOptions"]["mode"] in ("disabled", "token")
        assert tuple(int(x) for x in spec["rayVersion"].split(".")[:2]) >= (2, 52)  # token auth needs Ray 2.52+
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the dashboard and job API must not be exposed"
    groups = [head] + spec.get("workerGroupSpecs", [])
    found = []
    for group in groups:
        params = group["rayStartParams"]
        assert all(isinstance(v, str) for v in params.values()), f"rayStartParams are strings: {params}"
        found += containers(group["template"])
    for worker in spec.get("workerGroupSpecs", []):
        assert DNS_1123.match(worker["groupName"])
        assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    for c in found:
        limits, requests = c["resources"]["limits"], c["resources"]["requests"]
        assert {"cpu", "memory"} <= set(limits), c["name"]
        if "nvidia.com/gpu" in limits:  # extended resources: request must equal limit
            assert requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
        assert c["image"] == found[0]["image"], "every node runs the same image"
        assert all(ENV_NAME.match(e["name"]) for e in c.get("env", []))
    return found


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def mlflow_service_uri() -> str:
    docs = {d["kind"]: d for d in load_all("kuberay/mlflow.yaml")}
    port = docs["Service"]["spec"]["ports"][0]["port"]
    return f"http://{docs['Service']['metadata']['name']}.default.svc.cluster.local:{port}"


@pytest.mark.parametrize("name", ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_manifests(name):
    (doc,) = load_all(name)
    assert doc["apiVersion"] == "ray.io/v1"
    assert DNS_1123.match(doc["metadata"]["name"])
    spec = doc["spec"]
    cluster_spec = spec if doc["kind"] == "RayCluster" else spec["rayClusterSpec"]
    found = check_cluster_spec(cluster_spec)
    for c in found:  # every node tracks to the Kubernetes MLflow server and checkpoints to shared storage
        env = env_of(c)
        assert env["MLFLOW_TRACKING_URI"] == mlflow_service_uri()
        assert env["TUNE_SERVICE_STORAGE_PATH"].startswith("s3://")
    if doc["kind"] == "RayJob":
        command = shlex.split(spec["entrypoint"])
        assert command[:3] == ["python", "-m", "tune_service.cli"]
        args = _parser().parse_args(command[3:])  # the entrypoint is a valid tune-service command line
        assert args.command == "run" and args.address == "auto"
        head = cluster_spec["headGroupSpec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
        volumes = {v["name"] for v in head["volumes"]}
        assert any(args.spec.startswith(path + "/") for name, path in mounts.items() if name in volumes)


def test_the_mlflow_deployment_runs_the_projects_server_recipe():
    docs = {d["kind"]: d for d in load_all("kuberay/mlflow.yaml")}
    assert set(docs) == {"PersistentVolumeClaim", "Deployment", "Service"}
    deploy = docs["Deployment"]
    pod = deploy["spec"]["template"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert docs["Service"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = containers(pod)
    script, data_dir, port = container["command"]
    # the image copies the repository to /home/ray/tune-service (cluster/Dockerfile)
    assert (CLUSTER.parent / script.removeprefix("/home/ray/tune-service/")).is_file()
    assert int(port) == container["ports"][0]["containerPort"] == container["readinessProbe"]["httpGet"]["port"]
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = next(v for v in pod["spec"]["volumes"] if v["name"] == mounts[data_dir])
    assert claim["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_AUTH"]["value"] == "1" and "secretKeyRef" in env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]
    assert docs["Service"]["spec"]["type"] == "ClusterIP"
