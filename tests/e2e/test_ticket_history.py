"""Requesters, public replies, ticket history, SLA and macros over real transports: HTTP in both eras, and stdio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ok
from tests.e2e.conftest import MCP_DESK, StartHttp, base_env
from tests.e2e.support import ERAS, Era, connect

pytestmark = pytest.mark.anyio


async def _work_a_ticket(client: Client, title: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open a ticket for a requester, reply in public, wait, note internally; the ticket and its history."""
    created = ok(
        await client.call_tool("create_ticket", {"title": title, "description": "d", "requester": "rita@example.com"})
    )
    tid = created["id"]
    ok(await client.call_tool("comment_ticket", {"ticket_id": tid, "body": "on it", "visibility": "public"}))
    ok(
        await client.call_tool(
            "transition_ticket",
            {"ticket_id": tid, "status": "waiting", "comment": "asked for a photo", "comment_visibility": "public"},
        )
    )
    ok(await client.call_tool("comment_ticket", {"ticket_id": tid, "body": "probably the fuser"}))
    ticket = ok(await client.call_tool("get_ticket", {"ticket_id": tid}))
    history = ok(await client.call_tool("get_ticket_history", {"ticket_id": tid}))
    return ticket, history["items"]


async def _apply_a_macro(client: Client, title: str) -> None:
    """A shipped macro resolves a fresh ticket with a public reply and one history entry; the SLA is met."""
    created = ok(await client.call_tool("create_ticket", {"title": title, "description": "d", "requester": "Rita"}))
    tid = created["id"]
    assert created["sla"]["state"] == "on_track"
    assert "printer-resolved" in [m["id"] for m in ok(await client.call_tool("list_macros", {}))["items"]]
    applied = ok(
        await client.call_tool(
            "apply_macro", {"ticket_id": tid, "macro": "printer-resolved", "expected_version": created["version"]}
        )
    )
    assert (applied["status"], applied["sla"]["state"]) == ("resolved", "met")
    assert [(c["visibility"], c["body"].splitlines()[0]) for c in applied["comments"]] == [("public", "Hello Rita,")]
    history = ok(await client.call_tool("get_ticket_history", {"ticket_id": tid}))["items"]
    assert [(e["kind"], e["detail"].get("macro")) for e in history] == [
        ("created", None),
        ("macro", "printer-resolved"),
    ]
    met = ok(await client.call_tool("list_tickets", {"sla_state": "met"}))["items"]
    assert [item["id"] for item in met] == [tid]


def _check(ticket: dict[str, Any], history: list[dict[str, Any]]) -> None:
    assert ticket["requester"] == "rita@example.com"
    assert [c["visibility"] for c in ticket["comments"]] == ["public", "public", "internal"]
    assert ticket["clock"]["first_responded_at"] is not None
    assert ticket["clock"]["waiting_since"] is not None
    assert [e["kind"] for e in history] == ["created", "commented", "status", "commented"]
    assert history[2]["changes"] == {"status": {"old": "open", "new": "waiting"}}
    assert [e["detail"].get("visibility") for e in history] == [None, "public", "public", "internal"]
    assert ticket["sla"]["state"] == "paused"
    assert ticket["sla"]["first_responded_at"] == ticket["clock"]["first_responded_at"]


@pytest.mark.parametrize("mode", ERAS)
async def test_history_and_reply_visibility_over_http_in_either_era(start_http: StartHttp, mode: Era) -> None:
    server = start_http()
    with anyio.fail_after(60):
        async with connect(server.url, mode=mode) as client:
            ticket, history = await _work_a_ticket(client, f"printer over {mode}")
            await _apply_a_macro(client, f"printer offline over {mode}")
    _check(ticket, history)
    assert server.stop() == 0


async def test_history_and_reply_visibility_over_stdio(tmp_path: Path) -> None:
    server = StdioServerParameters(command=MCP_DESK, args=["stdio"], env=base_env(tmp_path), cwd="/")
    with anyio.fail_after(60):
        async with Client(server) as client:
            ticket, history = await _work_a_ticket(client, "printer over stdio")
            await _apply_a_macro(client, "printer offline over stdio")
    _check(ticket, history)
    assert {e["actor"] for e in history} == {"local"}
