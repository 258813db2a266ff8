"""A real `mcp-desk http`: the duration histogram's `error_type` and `mcp_protocol_version`, and session durations."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import connect
from tests.e2e.test_metrics_live import scrape, value

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DURATION = "mcp_server_operation_duration_seconds_count"
SESSIONS = "mcp_server_session_duration_seconds_count"


def call_labels(tool: str, error_type: str, version: str) -> dict[str, str]:
    return {
        "mcp_method_name": "tools/call",
        "gen_ai_tool_name": tool,
        "error_type": error_type,
        "network_transport": "tcp",
        "mcp_protocol_version": version,
    }


async def test_calls_are_measured_on_the_conventions_in_both_eras_and_a_closed_session_is_timed(
    start_http: StartHttp,
) -> None:
    server = start_http()
    with anyio.fail_after(60):
        async with connect(server.url, mode="legacy") as client:
            ok(await client.call_tool("create_note", {"title": "t", "body": "b"}))
            assert (await client.call_tool("run_diagnostic", {"name": "disk_usage"})).is_error
            with pytest.raises(MCPError):
                await client.call_tool("no_such_tool", {})
        async with connect(server.url, mode="2026-07-28") as modern:
            ok(await modern.call_tool("get_usage", {}))
        scraped = await scrape(server)

    assert value(scraped, DURATION, **call_labels("create_note", "", "2025-11-25")) == 1
    assert value(scraped, DURATION, **call_labels("run_diagnostic", "tool_error", "2025-11-25")) == 1
    assert value(scraped, DURATION, **call_labels("other", "-32602", "2025-11-25")) == 1
    assert value(scraped, DURATION, **call_labels("get_usage", "", "2026-07-28")) == 1
    session = {"network_transport": "tcp", "mcp_protocol_version": "2025-11-25", "error_type": ""}
    assert value(scraped, SESSIONS, **session) == 1  # the legacy client's DELETE ended it
    assert server.stop() == 0
