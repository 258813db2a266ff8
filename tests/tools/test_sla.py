"""SLA through the real client with a clock the test moves: states, pauses, breaches, the filter and the gauge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client

from mcp_desk.app import App, create_app
from tests.clock import ManualUtcClock
from tests.conftest import REPO, MakeSettings, connected, error, ok

pytestmark = pytest.mark.anyio

DEFAULT_POLICY = REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml"


async def _urgent(client: Client, title: str = "Mail server down") -> str:
    created = ok(
        await client.call_tool(
            "create_ticket",
            {"title": title, "description": "nobody gets mail", "priority": "urgent", "requester": "rita@example.com"},
        )
    )
    ticket_id: str = created["id"]
    return ticket_id


async def _sla(client: Client, ticket_id: str) -> dict[str, Any]:
    sla: dict[str, Any] = ok(await client.call_tool("get_ticket", {"ticket_id": ticket_id}))["sla"]
    return sla


async def _listed(client: Client, **filters: Any) -> list[tuple[str, str]]:
    page = ok(await client.call_tool("list_tickets", filters))
    return [(item["id"], item["sla_state"]) for item in page["items"]]


async def _move(client: Client, ticket_id: str, status: str) -> dict[str, Any]:
    return ok(await client.call_tool("transition_ticket", {"ticket_id": ticket_id, "status": status}))


async def test_an_urgent_ticket_goes_due_soon_and_a_public_reply_stops_the_first_response_clock(
    desk: Client, clock: ManualUtcClock
) -> None:
    tid = await _urgent(desk)
    assert await _sla(desk, tid) == {
        "state": "on_track",
        "first_response_due_at": "2026-01-05T09:30:00.000000Z",
        "resolution_due_at": "2026-01-05T13:00:00.000000Z",
        "first_responded_at": None,
    }
    clock.advance(minutes=24)
    assert (await _sla(desk, tid))["state"] == "due_soon"
    ok(await desk.call_tool("comment_ticket", {"ticket_id": tid, "body": "looking into it"}))
    assert (await _sla(desk, tid))["first_responded_at"] is None  # an internal comment is not a reply
    ok(await desk.call_tool("comment_ticket", {"ticket_id": tid, "body": "on it", "visibility": "public"}))
    replied = await _sla(desk, tid)
    assert (replied["state"], replied["first_responded_at"]) == ("on_track", "2026-01-05T09:24:00.000000Z")
    clock.advance(hours=1)
    assert (await _sla(desk, tid))["state"] == "on_track"


async def test_waiting_pauses_the_ticket_and_moves_its_resolution_due_time(desk: Client, clock: ManualUtcClock) -> None:
    tid = await _urgent(desk)
    ok(await desk.call_tool("comment_ticket", {"ticket_id": tid, "body": "which mailbox?", "visibility": "public"}))
    clock.advance(minutes=30)
    waiting = await _move(desk, tid, "waiting")
    assert waiting["sla"]["state"] == "paused"
    clock.advance(hours=6)
    paused = await _sla(desk, tid)
    assert (paused["state"], paused["resolution_due_at"]) == ("paused", "2026-01-05T19:00:00.000000Z")
    assert await _listed(desk, sla_state="paused") == [(tid, "paused")]

    resumed = await _move(desk, tid, "in_progress")
    assert (resumed["sla"]["state"], resumed["sla"]["resolution_due_at"]) == (
        "on_track",
        "2026-01-05T19:00:00.000000Z",
    )
    clock.advance(hours=3, minutes=31)
    assert (await _sla(desk, tid))["state"] == "breached"


async def test_a_breach_is_listed_by_the_filter_and_resolving_late_does_not_make_it_met(
    desk: Client, clock: ManualUtcClock
) -> None:
    late = await _urgent(desk, "Mail server down")
    fine = await _urgent(desk, "Printer jam")
    ok(await desk.call_tool("comment_ticket", {"ticket_id": fine, "body": "fixed", "visibility": "public"}))
    await _move(desk, fine, "resolved")
    clock.advance(minutes=31)

    assert await _listed(desk) == [(fine, "met"), (late, "breached")]
    assert await _listed(desk, sla_state="breached") == [(late, "breached")]
    assert await _listed(desk, sla_state="met", priority="urgent") == [(fine, "met")]
    assert await _listed(desk, sla_state="on_track") == []
    ok(await desk.call_tool("comment_ticket", {"ticket_id": late, "body": "sorry", "visibility": "public"}))
    assert (await _move(desk, late, "resolved"))["sla"]["state"] == "breached"
    found = ok(await desk.call_tool("search_tickets", {"query": "printer"}))
    assert [item["sla_state"] for item in found["items"]] == ["met"]


async def test_an_unknown_sla_state_is_refused_by_validation(desk: Client) -> None:
    refused = error(await desk.call_tool("list_tickets", {"sla_state": "late"}))
    assert refused.startswith("invalid_input: invalid arguments: sla_state:")


async def test_the_resource_and_the_prompts_show_the_sla(desk: Client, clock: ManualUtcClock) -> None:
    tid = await _urgent(desk)
    clock.advance(minutes=40)
    read = await desk.read_resource(f"ticket://{tid}")
    assert json.loads(read.contents[0].text)["sla"]["state"] == "breached"  # type: ignore[union-attr]  # text contents
    for name in ("triage_ticket", "draft_reply", "summarize_ticket"):
        prompt = await desk.get_prompt(name, {"ticket_id": tid})
        text = prompt.messages[0].content
        assert text.type == "text"
        assert (
            "SLA: breached; no public reply yet, due 2026-01-05T09:30:00.000000Z; "
            "resolution due 2026-01-05T13:00:00.000000Z"
        ) in text.text


async def test_sla_states_complete(desk: Client) -> None:
    ref = types.PromptReference(type="ref/prompt", name="triage_ticket")
    assert (await desk.complete(ref, {"name": "sla_state", "value": ""})).completion.values == [
        "on_track",
        "due_soon",
        "breached",
        "met",
        "paused",
    ]
    assert (await desk.complete(ref, {"name": "sla_state", "value": "b"})).completion.values == ["breached"]


async def test_the_gauge_counts_open_tickets_by_priority_and_state_at_each_scrape(
    app: App, desk: Client, clock: ManualUtcClock
) -> None:
    late = await _urgent(desk)
    done = await _urgent(desk, "Printer jam")
    await _move(desk, done, "closed")
    ok(await desk.call_tool("create_ticket", {"title": "New laptop", "description": "d", "priority": "low"}))
    clock.advance(minutes=31)
    sidecar = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.sidecar), base_url="http://127.0.0.1")
    async with sidecar:
        before = (await sidecar.get("/metrics")).text
        await _move(desk, late, "resolved")
        after = (await sidecar.get("/metrics")).text

    assert 'mcp_desk_sla_tickets{priority="urgent",state="breached"} 1.0' in before
    assert 'mcp_desk_sla_tickets{priority="low",state="on_track"} 1.0' in before
    assert 'mcp_desk_sla_tickets{priority="urgent",state="breached"} 0.0' in after
    assert "met" not in {
        line.split('state="')[1].split('"')[0] for line in after.splitlines() if "sla_tickets{" in line
    }


async def test_the_policy_file_sets_the_targets(
    make_settings: MakeSettings, clock: ManualUtcClock, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        DEFAULT_POLICY.read_text().replace(
            "[sla.urgent]\nfirst_response_minutes = 30\nresolution_minutes = 240",
            "[sla.urgent]\nfirst_response_minutes = 5\nresolution_minutes = 45",
        )
    )
    app = create_app(make_settings(policy_file=policy), transport="memory", clock=clock)
    async with connected(app) as client:
        tid = await _urgent(client)
        sla = await _sla(client, tid)
    assert (sla["first_response_due_at"], sla["resolution_due_at"]) == (
        "2026-01-05T09:05:00.000000Z",
        "2026-01-05T09:45:00.000000Z",
    )
