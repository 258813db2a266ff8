"""The compose `tracing` profile: Jaeger takes the OTLP spans, Grafana reads them, the dashboard links there."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from tests.ops.deploy_support import ENV_EXAMPLE, REPO, compose_config, dashboard_panels, load_yaml

DATASOURCES = REPO / "grafana" / "provisioning" / "datasources"


def test_jaeger_runs_only_in_the_tracing_profile_on_the_internal_network_unpublished() -> None:
    assert "jaeger" not in compose_config()["services"]
    services = compose_config(COMPOSE_PROFILES="tracing")["services"]
    jaeger = services["jaeger"]
    assert set(jaeger["networks"]) == {"backend"}
    assert jaeger.get("ports", []) == []
    assert {"4318", "16686"} <= set(jaeger["expose"])
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "backend" in services["mcp-desk"]["networks"]


def test_the_documented_endpoint_reaches_jaegers_otlp_http_port() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    (endpoint,) = [line.split("=", 1)[1] for line in lines if line.startswith("# OTEL_EXPORTER_OTLP_ENDPOINT=")]
    assert endpoint == "http://jaeger:4318"


def test_grafana_has_a_jaeger_datasource_and_the_latency_panel_links_to_its_traces() -> None:
    (source,) = load_yaml(DATASOURCES / "jaeger.yml")["datasources"]
    assert (source["type"], source["url"]) == ("jaeger", "http://jaeger:16686")

    (panel,) = [p for p in dashboard_panels() if p["title"] == "p95 latency per tool"]
    (link,) = panel["fieldConfig"]["defaults"]["links"]
    panes = json.loads(re.sub(r"\$\{[^}]+\}", "X", unquote(link["url"].split("panes=", 1)[1])))
    (query,) = panes["traces"]["queries"]
    assert query["datasource"]["uid"] == source["uid"]
    assert (query["service"], query["operation"]) == ("mcp-desk", "tools/call X")
