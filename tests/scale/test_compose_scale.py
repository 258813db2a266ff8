"""The compose `scale` profile: PostgreSQL, Redis, HAProxy (`lb`) and several replicas, off by default."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import REPO
from tests.ops.deploy_support import compose_config, ensure_prometheus, load_yaml, run
from tests.scale.haproxy_support import HAPROXY_CFG, haproxy_binary

SCALE = {"postgres", "redis", "lb", "mcp-desk-replica"}
DEFAULT = {"mcp-desk", "prometheus", "grafana", "alertmanager"}


@pytest.fixture(scope="module")
def scaled() -> dict[str, Any]:
    services: dict[str, Any] = compose_config(COMPOSE_PROFILES="scale")["services"]
    return services


def test_the_profile_adds_its_services_and_plain_up_is_unchanged(scaled: dict[str, Any]) -> None:
    assert set(compose_config()["services"]) == DEFAULT
    assert set(scaled) == DEFAULT | SCALE
    for name in SCALE:
        assert scaled[name]["profiles"] == ["scale"]


def test_every_image_is_pinned(scaled: dict[str, Any]) -> None:
    for name, service in scaled.items():
        if name.startswith("mcp-desk"):
            continue  # built from this repository (DEPLOY_IMAGE)
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9./-]+:v?\d+(\.\d+)+(-[a-z0-9]+)?", image), (name, image)


def test_replicas_run_on_postgres_and_redis_unpublished_with_a_chain_each(scaled: dict[str, Any]) -> None:
    replica = scaled["mcp-desk-replica"]
    env = replica["environment"]
    assert replica["deploy"]["replicas"] >= 2
    assert not replica.get("ports")
    assert re.fullmatch(r"postgresql://mcp_desk:[^@]+@postgres:5432/mcp_desk", env["MCP_DESK_DATABASE_URL"])
    assert env["MCP_DESK_REDIS_URL"] == "redis://redis:6379/0"
    assert env["MCP_DESK_BOOTSTRAP_ADMIN_KEY"] == "false"  # `mcp-desk` creates the key they share
    assert env["MCP_DESK_API_KEYS_FILE"] == scaled["mcp-desk"]["environment"]["MCP_DESK_API_KEYS_FILE"]
    assert "MCP_DESK_REPLICA_ID" not in env  # the container's host name: one per replica
    audit = env["MCP_DESK_AUDIT_LOG_PATH"]
    assert audit.startswith("/data/") and "." not in audit.rsplit("/", 1)[-1]  # a folder: <replica>.jsonl each
    assert env["MCP_DESK_ALLOWED_HOSTS"] == '["127.0.0.1:8080","localhost:8080"]'  # as reached through lb
    assert {name: dep["condition"] for name, dep in replica["depends_on"].items()} == {
        "mcp-desk": "service_healthy",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert replica["read_only"] is True
    assert replica["cap_drop"] == ["ALL"]
    assert replica["healthcheck"] == scaled["mcp-desk"]["healthcheck"]
    for name in ("postgres", "redis"):
        assert not scaled[name].get("ports")
        assert set(scaled[name]["networks"]) == {"backend"}
        assert scaled[name]["healthcheck"]["test"]


def test_lb_runs_the_shipped_haproxy_configuration_on_loopback(scaled: dict[str, Any]) -> None:
    lb = scaled["lb"]
    mounts = {volume["target"]: volume for volume in lb["volumes"]}
    config = mounts["/usr/local/etc/haproxy/haproxy.cfg"]
    assert (config["type"], config["source"], config["read_only"]) == ("bind", str(HAPROXY_CFG), True)
    assert [(p["host_ip"], p["published"], p["target"]) for p in lb["ports"]] == [("127.0.0.1", "8080", 8000)]
    assert lb["depends_on"]["mcp-desk-replica"]["condition"] == "service_healthy"
    text = HAPROXY_CFG.read_text()
    (template,) = re.findall(r"(?m)^    server-template \S+ \S+ (\S+):8000 ", text)
    assert template == "mcp-desk-replica"  # resolved by compose's DNS, one address per replica
    assert "option httpchk GET /health/ready" in text
    assert re.search(r"(?m)^    default-server check port 3001 ", text)
    assert "option redispatch" in text
    done = run([haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_discovers_every_replica_by_dns() -> None:
    config = load_yaml(REPO / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mcp-desk"]
    assert job["dns_sd_configs"] == [
        {"names": ["mcp-desk-replica"], "type": "A", "port": 3001, "refresh_interval": "30s"}
    ]
    promtool = ensure_prometheus()[1]
    done = run([promtool, "check", "config", str(REPO / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
