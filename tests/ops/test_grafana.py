"""Grafana provisioning and the on-call dashboard: wiring, parsing, and data from a real Prometheus."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.ops.deploy_support import (
    BIN,
    DASHBOARD,
    DOCUMENTED_METRICS,
    HEALTH_METRICS,
    PROMETHEUS_METRICS,
    REPO,
    compose_config,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    dump_yaml,
    ensure_prometheus,
    exported_family,
    families_in_exposition,
    free_port,
    http_get,
    load_yaml,
    metric_names,
    prometheus_query,
    run,
    spawn,
    stop,
    substitute_grafana_variables,
    tail,
    wait_for,
)

PROVISIONING = REPO / "grafana" / "provisioning"
EXPRS = dashboard_exprs()


def _datasource() -> dict[str, Any]:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    return dict(source)


def test_datasource_points_at_the_compose_prometheus_service() -> None:
    source = _datasource()
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose_config()["services"]


def test_dashboard_provider_reads_the_mounted_dashboards_folder() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "mcp-desk.yml")["providers"]
    grafana = compose_config()["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    folder = mounts[provider["options"]["path"]]
    assert folder == REPO / "grafana" / "dashboards"
    assert (folder / "mcp-desk.json").is_file()
    assert (
        grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        == provider["options"]["path"] + "/mcp-desk.json"
    )


def _variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def test_the_datasource_is_a_variable_defaulting_to_the_provisioned_one() -> None:
    """Imported into any Grafana, the dashboard asks for a Prometheus instead of naming a fixed uid."""
    source = _datasource()
    variable = _variables()["datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    assert variable["current"]["value"] == source["uid"]
    assert source["isDefault"] is True


def test_every_panel_and_variable_query_uses_the_datasource_variable() -> None:
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    for name in ("job", "instance"):
        assert _variables()[name]["datasource"]["uid"] == "${datasource}"
    assert "mcp-desk-prometheus" not in DASHBOARD.read_text().replace('"value": "mcp-desk-prometheus"', "")


def test_job_and_instance_variables_show_one_replica_or_all() -> None:
    job, instance = _variables()["job"], _variables()["instance"]
    assert "label_values(mcp_desk_build_info, job)" in job["query"]["query"]
    assert 'job=~"$job"' in instance["query"]["query"]
    assert instance["includeAll"] is True
    assert instance["multi"] is True
    assert instance["allValue"] == ".*"
    assert job["current"]["value"] == "mcp-desk"


def test_every_metric_in_every_query_is_filtered_by_job_and_instance() -> None:
    for title, expr in EXPRS:
        selectors = re.findall(r"\b(?:mcp_desk_[a-z_]+|mcp_server_[a-z_]+|up)\b(\{[^}]*\})?", expr)
        assert selectors, title
        for selector in selectors:
            assert 'job=~"$job"' in selector, (title, expr)
            assert 'instance=~"$instance"' in selector, (title, expr)


def test_panel_ids_are_unique_and_the_dashboard_has_a_stable_uid() -> None:
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))
    assert dashboard()["uid"] == "mcp-desk-oncall"


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps at {(x, y)}"
                cells.add((x, y))


@pytest.mark.parametrize(
    "topic",
    [
        "calls",
        "error",
        "latency",
        "denied",
        "rate limited",
        "budget",
        "cost",
        "sessions",
        "sandbox",
        "health",
        "tickets",
        "sla",
    ],
)
def test_dashboard_covers_what_on_call_needs(topic: str) -> None:
    titles = " | ".join(panel["title"].lower() for panel in dashboard_panels())
    assert topic in titles


def test_latency_percentiles_are_shown_per_tool() -> None:
    per_tool = [e for _, e in EXPRS if "histogram_quantile" in e and "gen_ai_tool_name" in e]
    assert {re.search(r"histogram_quantile\(([\d.]+)", e).group(1) for e in per_tool} >= {"0.5", "0.95", "0.99"}  # type: ignore[union-attr]  # every match exists by the filter above


@pytest.mark.parametrize(("title", "expr"), EXPRS, ids=[f"{i}-{t}" for i, (t, _) in enumerate(EXPRS)])
def test_every_query_parses_and_uses_only_exported_metrics(title: str, expr: str) -> None:
    names = metric_names(substitute_grafana_variables(expr))
    assert names, title
    allowed = DOCUMENTED_METRICS | HEALTH_METRICS | PROMETHEUS_METRICS
    assert {exported_family(n) for n in names} <= allowed, title


def test_every_query_is_accepted_by_promtool(tmp_path: Path) -> None:
    """Prometheus' own parser, via the queries written as recording rules."""
    promtool = ensure_prometheus()[1]
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": substitute_grafana_variables(e)}
        for i, (_, e) in enumerate(EXPRS)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(dump_yaml({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_error_ratio_panels_show_zero_rather_than_nothing() -> None:
    for title, expr in EXPRS:
        if 'outcome="error"' in expr and "/" in expr:
            assert expr.endswith("or vector(0)"), title


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - prometheus/recording.yml
scrape_configs:
  - job_name: mcp-desk
    static_configs:
      - targets: ["127.0.0.1:{health_port}"]
"""


async def _traffic(url: str) -> None:
    """A little of everything an on-call dashboard shows: successes, a miss, denials, invalid input."""
    from mcp import Client

    with anyio.fail_after(30):
        async with Client(url, mode="legacy") as client:
            await client.list_tools()
            note = await client.call_tool("create_note", {"title": "disk full on db-1", "body": "df shows 100%"})
            assert not note.is_error, note
            ticket = await client.call_tool("create_ticket", {"title": "db-1 disk", "description": "disk full"})
            assert not ticket.is_error, ticket
            for name, arguments in [
                ("list_notes", {}),
                ("search_notes", {"query": "disk"}),
                ("list_tickets", {}),
                ("search_docs", {"query": "disk"}),
                ("get_usage", {}),
                ("get_note", {"note_id": "does-not-exist"}),
                ("delete_ticket", {"ticket_id": "does-not-exist"}),
                ("run_diagnostic", {"name": "disk_usage"}),
                ("create_note", {"title": "x" * 500, "body": "too long a title"}),
            ]:
                await client.call_tool(name, arguments)


@pytest.mark.slow
def test_every_dashboard_query_returns_data_from_prometheus_scraping_a_real_server(tmp_path: Path) -> None:
    prometheus = ensure_prometheus()[0]
    mcp_port, health_port, prom_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_DESK_")}
    env.update(
        MCP_DESK_ENVIRONMENT="development",
        MCP_DESK_STORAGE_PATH=str(tmp_path / "data"),
        MCP_DESK_EXPORT_PATH=str(tmp_path / "data" / "exports"),
        MCP_DESK_DOCS_PATH=str(REPO / "docs" / "kb"),
        MCP_DESK_HOST="127.0.0.1",
        MCP_DESK_PORT=str(mcp_port),
        MCP_DESK_HEALTH_HOST="127.0.0.1",
        MCP_DESK_HEALTH_PORT=str(health_port),
        MCP_DESK_SHUTDOWN_GRACE_SECONDS="5",
    )
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "recording.yml").write_text((REPO / "prometheus" / "recording.yml").read_text())
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(health_port=health_port))
    base = f"http://127.0.0.1:{prom_port}"

    server_log, prom_log = tmp_path / "mcp_desk.log", tmp_path / "prometheus.log"
    server = spawn([str(BIN / "mcp-desk"), "http"], log=server_log, env=env, cwd=tmp_path)
    prom = spawn(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        log=prom_log, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{health_port}/health/ready", proc=server, log=server_log)
        wait_for(f"{base}/-/ready", proc=prom, log=prom_log)
        _wait_until(base, 'up{job="mcp-desk"} == 1')
        anyio.run(_traffic, f"http://127.0.0.1:{mcp_port}/mcp")
        _wait_until(base, "sum(rate(mcp_desk_tool_calls_total[1m])) > 0")
        exported = families_from(f"http://127.0.0.1:{health_port}/metrics")

        empty = [(t, e) for t, e in EXPRS if not prometheus_query(base, substitute_grafana_variables(e))]
        assert empty == [], f"queries that return no data: {empty}"
        missing = {family for _, e in EXPRS for family in _families(e)} - PROMETHEUS_METRICS - exported
        assert missing == set(), f"not exported by the server: {missing}"
    finally:
        stop(prom, timeout=10)
        assert stop(server, timeout=15) == 0, tail(server_log)


def _families(expr: str) -> set[str]:
    return {exported_family(n) for n in metric_names(substitute_grafana_variables(expr))}


def families_from(url: str) -> set[str]:
    """Metric families the server's /metrics declares."""
    code, body = http_get(url)
    assert code == 200
    return families_in_exposition(body)


def _wait_until(base: str, expr: str, deadline_seconds: float = 30) -> None:
    """Poll Prometheus until `expr` returns a sample (first scrape lands ~5.5 s after start)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if prometheus_query(base, expr):
            return
        time.sleep(0.25)
    pytest.fail(f"Prometheus never saw {expr!r} within {deadline_seconds}s")
