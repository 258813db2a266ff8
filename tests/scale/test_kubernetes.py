"""deploy/kubernetes: valid for Kubernetes 1.31 (kubernetes-validate, strict), and what operators rely on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs pinned; safe_load_all is Any either way

from mcp_desk.config import ENV_PREFIX, Settings
from mcp_desk.policy.rules import Policy
from tests.conftest import REPO

MANIFESTS = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES_VERSION = "1.31.0"
VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")


def documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def one(kind: str, name: str = "mcp-desk") -> dict[str, Any]:
    matches = [doc for doc in documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}"
    return matches[0]


def container() -> dict[str, Any]:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def env() -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container()["env"]}


def port_number(name: str) -> int:
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    return int(ports[name])


def test_every_manifest_is_valid_for_kubernetes_strictly() -> None:
    files = sorted(str(path) for path in MANIFESTS.glob("*.yaml"))
    done = subprocess.run(
        [VALIDATE, "-k", KUBERNETES_VERSION, "--strict", "--quiet", *files],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {doc["kind"] for doc in documents()}
    assert kinds >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Secret",
        "ConfigMap",
    }


def test_probes_ask_the_sidecar_readiness_and_liveness() -> None:
    spec = container()
    health = port_number("health")
    assert env()["MCP_DESK_HEALTH_PORT"]["value"] == str(health)
    assert spec["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
    assert spec["startupProbe"]["httpGet"]["port"] == "health"
    assert env()["MCP_DESK_PORT"]["value"] == str(port_number("mcp"))


def test_the_pod_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    user = re.search(r"(?m)^USER (\d+):(\d+)$", DOCKERFILE.read_text())
    assert user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["securityContext"]["runAsGroup"] == int(user.group(2))
    assert pod["automountServiceAccountToken"] is False
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {mount["mountPath"] for mount in container()["volumeMounts"] if not mount.get("readOnly")}
    assert writable == {"/data", "/tmp"}  # noqa: S108  # the pod's own tmpfs, checked, not used


def test_resources_are_requested_and_limited() -> None:
    resources = container()["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


def test_in_flight_calls_finish_before_kubernetes_kills_the_pod() -> None:
    grace = one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(env()["MCP_DESK_SHUTDOWN_GRACE_SECONDS"]["value"])


def test_every_variable_is_a_setting_and_each_replica_has_its_own_id_and_audit_chain() -> None:
    keys = {name.removeprefix(ENV_PREFIX).lower() for name in env() if name.startswith(ENV_PREFIX)}
    assert keys <= set(Settings.model_fields), keys - set(Settings.model_fields)
    variables = env()
    assert variables["MCP_DESK_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "$(MCP_DESK_REPLICA_ID)" in variables["MCP_DESK_AUDIT_LOG_PATH"]["value"]
    assert variables["MCP_DESK_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "mcp-desk-redis"
    assert variables["MCP_DESK_ENVIRONMENT"]["value"] == "production"


def test_disruptions_and_autoscaling_keep_at_least_one_replica_serving() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mcp-desk"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_services_and_network_policy_reach_the_replicas_on_their_two_ports() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for name in ("mcp-desk", "mcp-desk-replicas"):
        service = one("Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        assert {port["targetPort"] for port in service["spec"]["ports"]} == {"mcp", "health"}
    assert one("Service", "mcp-desk-replicas")["spec"]["clusterIP"] == "None"
    policy = one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ingress_ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ingress_ports == {port_number("mcp"), port_number("health")}
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert 6379 in egress_ports


def test_the_policy_config_map_is_the_built_in_policy_and_loads(tmp_path: Path) -> None:
    text = one("ConfigMap", "mcp-desk-policy")["data"]["policy.toml"]
    builtin = REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml"
    assert text == builtin.read_text()
    (tmp_path / "policy.toml").write_text(text)
    assert set(Policy.load(tmp_path / "policy.toml").role_names()) >= {"viewer", "agent", "admin"}
    mounted = {mount["name"]: mount["mountPath"] for mount in container()["volumeMounts"]}
    assert env()["MCP_DESK_POLICY_FILE"]["value"] == f"{mounted['policy']}/policy.toml"


def test_the_keys_secret_holds_no_key_and_is_mounted_read_only() -> None:
    secret = one("Secret", "mcp-desk-keys")
    lines = [line for line in secret["stringData"]["keys"].splitlines() if line and not line.startswith("#")]
    assert lines == []
    mount = next(m for m in container()["volumeMounts"] if m["name"] == "keys")
    assert mount["readOnly"] is True
    assert env()["MCP_DESK_API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/keys"


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_each_manifest_says_what_it_is_for(path: Path) -> None:
    assert path.read_text().startswith("#")
