"""Ticket tools: status machine, comments, assignment, links, lists."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from tests.conftest import MakeApp, connected, error, ok

pytestmark = pytest.mark.anyio


async def new_ticket(client: Client, **extra: Any) -> dict[str, Any]:
    return ok(
        await client.call_tool("create_ticket", {"title": "Printer offline", "description": "3rd floor", **extra})
    )


async def test_a_new_ticket_is_open_and_normal_priority(client: Client) -> None:
    created = await new_ticket(client)
    assert (created["status"], created["priority"], created["version"]) == ("open", "normal", 1)


async def test_transitions_follow_the_machine_and_explain_refusals(client: Client) -> None:
    created = await new_ticket(client)
    resolved = ok(
        await client.call_tool(
            "transition_ticket", {"ticket_id": created["id"], "status": "resolved", "comment": "rebooted"}
        )
    )
    assert resolved["status"] == "resolved" and resolved["comments"][0]["body"] == "rebooted"
    refused = error(await client.call_tool("transition_ticket", {"ticket_id": created["id"], "status": "waiting"}))
    assert refused == f"conflict: ticket {created['id']} is resolved; allowed next: closed, open"
    assert ok(await client.call_tool("get_ticket", {"ticket_id": created["id"]}))["status"] == "resolved"


async def test_an_unknown_status_is_refused_by_validation(client: Client) -> None:
    created = await new_ticket(client)
    refused = error(await client.call_tool("transition_ticket", {"ticket_id": created["id"], "status": "done"}))
    assert refused.startswith("invalid_input: invalid arguments: status:")


async def test_comment_returns_the_new_comment_and_get_shows_it(client: Client) -> None:
    created = await new_ticket(client)
    comment = ok(await client.call_tool("comment_ticket", {"ticket_id": created["id"], "body": "toner low"}))
    assert set(comment) == {"id", "ticket_id", "author", "body", "created_at", "visibility"}
    assert (comment["ticket_id"], comment["author"], comment["body"]) == (created["id"], "local", "toner low")
    assert comment["visibility"] == "internal"
    fetched = ok(await client.call_tool("get_ticket", {"ticket_id": created["id"]}))
    assert fetched["comment_count"] == 1 and fetched["comments"][0]["id"] == comment["id"]


async def test_assign_and_unassign(client: Client) -> None:
    created = await new_ticket(client)
    assert (
        ok(await client.call_tool("assign_ticket", {"ticket_id": created["id"], "assignee": "bob"}))["assignee"]
        == "bob"
    )
    assert ok(await client.call_tool("assign_ticket", {"ticket_id": created["id"], "assignee": ""}))["assignee"] is None


async def test_link_note_shows_the_note_on_the_ticket(client: Client) -> None:
    created = await new_ticket(client)
    note = ok(await client.call_tool("create_note", {"title": "n", "body": "b"}))
    linked = ok(await client.call_tool("link_note", {"ticket_id": created["id"], "note_id": note["id"]}))
    assert linked["linked_notes"] == [note["id"]]


async def test_list_returns_all_statuses_newest_first_and_filters(client: Client) -> None:
    first, second = await new_ticket(client), await new_ticket(client, priority="urgent")
    ok(await client.call_tool("transition_ticket", {"ticket_id": first["id"], "status": "closed"}))
    listed = ok(await client.call_tool("list_tickets", {}))
    assert [t["id"] for t in listed["items"]] == [first["id"], second["id"]]
    urgent = ok(await client.call_tool("list_tickets", {"priority": "urgent"}))
    assert [t["id"] for t in urgent["items"]] == [second["id"]]


async def _confirm(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


async def test_update_and_search_and_delete(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_role="admin"), elicitation_callback=_confirm) as client:
        await _update_search_delete(client)


async def test_an_agent_may_not_delete_tickets(client: Client) -> None:
    created = await new_ticket(client)
    refused = error(await client.call_tool("delete_ticket", {"ticket_id": created["id"]}))
    assert refused == "permission_denied: delete_ticket needs scope 'tickets:delete'"
    assert "delete_ticket" not in {tool.name for tool in (await client.list_tools()).tools}


async def _update_search_delete(client: Client) -> None:
    created = await new_ticket(client)
    ok(await client.call_tool("update_ticket", {"ticket_id": created["id"], "description": "paper jam in tray 2"}))
    found = ok(await client.call_tool("search_tickets", {"query": "tray"}))
    assert [t["id"] for t in found["items"]] == [created["id"]]
    ok(await client.call_tool("delete_ticket", {"ticket_id": created["id"]}))
    assert error(await client.call_tool("get_ticket", {"ticket_id": created["id"]})).startswith("not_found:")
