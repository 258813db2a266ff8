"""A real `mcp-desk http` with API keys: real traffic moves every documented metric, /health shows every check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from mcp_desk.policy.keys import generate_key, key_line
from tests.e2e.conftest import HttpServer, StartHttp

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OPS_KEY, READER_KEY = generate_key(), generate_key()
WRONG_KEY = "mcpd_0123456789ab_" + "GuessedSecretThatMustNeverBeLogged0123456"
HTTP_CHECKS = {"storage", "audit", "rate_limits", "budget", "sandbox", "sessions"}
RPM = 6


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(server: HttpServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.health_port}/metrics")
    assert response.status_code == 200
    return samples(response.text)


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def ops_traffic(server: HttpServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Allowed calls by an admin (a ticket, a note, a diagnostic, a search); scraped while the session is open."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {OPS_KEY}"}) as http,
        Client(streamable_http_client(server.url, http_client=http), mode="legacy") as ops,
    ):
        for name, arguments in [
            ("create_ticket", {"title": "db-1 disk full", "description": "df shows 100%"}),
            ("create_note", {"title": "disk", "body": "cleaned /var/tmp"}),
            ("run_diagnostic", {"name": "disk_usage"}),
            ("search_docs", {"query": "disk"}),
        ]:
            result = await ops.call_tool(name, arguments)
            assert not result.is_error or name == "run_diagnostic", text_of(result)
        return await scrape(server)


async def reader_traffic(server: HttpServer) -> list[str]:
    """A viewer: one denied write, then reads until the requests-per-minute limit refuses one."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {READER_KEY}"}) as http,
        Client(streamable_http_client(server.url, http_client=http), mode="legacy") as reader,
    ):
        denied = await reader.call_tool("create_note", {"title": "nope", "body": "viewer cannot write"})
        refusals = [text_of(denied)]
        for _ in range(3 * RPM):
            result = await reader.call_tool("list_tickets", {})
            if result.is_error:
                refusals.append(text_of(result))
                break
        return refusals


async def test_real_traffic_moves_every_metric_and_health_lists_every_check(
    start_http: StartHttp, tmp_path: Path
) -> None:
    keys = tmp_path / "api_keys"
    lines = [key_line(OPS_KEY, principal="ops", role="admin"), key_line(READER_KEY, principal="reader", role="viewer")]
    keys.write_text("\n".join(lines) + "\n")
    audit_log = tmp_path / "audit.jsonl"
    server = start_http(
        MCP_DESK_API_KEYS_FILE=str(keys),
        MCP_DESK_RATE_LIMIT_RPM=str(RPM),
        MCP_DESK_MAX_DAILY_TOKENS="200000",
        MCP_DESK_AUDIT_LOG_PATH=str(audit_log),
        MCP_DESK_SHUTDOWN_GRACE_SECONDS="5",
    )
    with anyio.fail_after(90):
        before = await scrape(server)
        during = await ops_traffic(server)
        refusals = await reader_traffic(server)
        async with httpx.AsyncClient() as client:
            refused = await client.post(
                server.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Authorization": f"Bearer {WRONG_KEY}", "Accept": "application/json, text/event-stream"},
            )
            health = await client.get(f"http://127.0.0.1:{server.health_port}/health")
        after = await scrape(server)

    assert refused.status_code == 401
    assert refusals[0].startswith("permission_denied:"), refusals
    assert refusals[-1].startswith("rate_limited:"), refusals

    assert value(before, "mcp_desk_sessions_active") == 0.0
    assert value(during, "mcp_desk_sessions_active") >= 1.0
    assert value(after, "mcp_desk_tickets", status="open") == 1.0
    assert value(after, "mcp_desk_budget_used_ratio") > 0.0
    assert value(after, "mcp_desk_output_tokens_total", tool="create_ticket") > 0.0
    assert value(after, "mcp_desk_context_cost_usd_total") > 0.0
    assert sum(v for (name, _), v in after.items() if name == "mcp_desk_sandbox_runs_total") == 1.0
    assert value(after, "mcp_desk_permission_denied_total", tool="create_note") == 1.0
    assert value(after, "mcp_desk_rate_limited_total", scope="requests") == 1.0
    assert value(after, "mcp_desk_tool_calls_total", tool="create_note", outcome="denied") == 1.0
    assert value(after, "mcp_desk_security_alerts_total", kind="auth_failed") == 1.0
    for event_type in ("tool_invocation", "tool_result", "permission_denied", "rate_limit_exceeded", "auth_failed"):
        assert value(after, "mcp_desk_audit_events_total", event_type=event_type) >= 1.0, event_type

    assert health.status_code == 200, health.text
    assert set(health.json()["checks"]) == HTTP_CHECKS
    gauges = {dict(labels)["check"]: v for (name, labels), v in after.items() if name == "mcp_desk_health_check_status"}
    assert set(gauges) == HTTP_CHECKS
    assert gauges["storage"] == 1.0

    assert server.stop() == 0
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert [r["detail"] for r in records if r["event_type"] == "auth_failed"] == ["invalid_credentials"]
    assert WRONG_KEY not in audit_log.read_text()
    assert WRONG_KEY not in server.log.read_text()
