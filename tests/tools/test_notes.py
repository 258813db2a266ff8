"""Note tools through the real app and the in-memory MCP client."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.conftest import error, ok

pytestmark = pytest.mark.anyio


async def test_a_note_round_trips_with_id_and_version(client: Client) -> None:
    created = ok(await client.call_tool("create_note", {"title": "VPN", "body": "drops hourly", "tags": ["net"]}))
    assert created["version"] == 1 and created["owner"] == "local"
    fetched = ok(await client.call_tool("get_note", {"note_id": created["id"]}))
    assert fetched == created


async def test_update_keeps_omitted_fields_and_refuses_a_stale_version(client: Client) -> None:
    created = ok(await client.call_tool("create_note", {"title": "a", "body": "b"}))
    updated = ok(await client.call_tool("update_note", {"note_id": created["id"], "title": "c", "expected_version": 1}))
    assert (updated["title"], updated["body"], updated["version"]) == ("c", "b", 2)
    stale = error(await client.call_tool("update_note", {"note_id": created["id"], "body": "x", "expected_version": 1}))
    assert stale.startswith("conflict:") and "fetch it again" in stale


async def test_delete_then_get_is_not_found(client: Client) -> None:
    created = ok(await client.call_tool("create_note", {"title": "a", "body": "b"}))
    assert ok(await client.call_tool("delete_note", {"note_id": created["id"]})) == {
        "id": created["id"],
        "deleted": True,
    }
    assert error(await client.call_tool("get_note", {"note_id": created["id"]})).startswith("not_found:")


async def test_list_filters_by_tag_and_pages(client: Client) -> None:
    for i in range(3):
        ok(await client.call_tool("create_note", {"title": f"n{i}", "body": "b", "tags": ["keep"]}))
    ok(await client.call_tool("create_note", {"title": "other", "body": "b"}))
    first = ok(await client.call_tool("list_notes", {"tag": "keep", "limit": 2}))
    rest = ok(await client.call_tool("list_notes", {"tag": "keep", "limit": 2, "cursor": first["next_cursor"]}))
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert all("id" in item for item in first["items"])


async def test_search_finds_words_in_the_body(client: Client) -> None:
    created = ok(await client.call_tool("create_note", {"title": "mail", "body": "the MX record flaps"}))
    found = ok(await client.call_tool("search_notes", {"query": "flaps"}))
    assert [item["id"] for item in found["items"]] == [created["id"]]


async def test_create_with_the_same_idempotency_key_returns_the_same_note(client: Client) -> None:
    args = {"title": "a", "body": "b", "idempotency_key": "req-1"}
    assert (
        ok(await client.call_tool("create_note", args))["id"] == ok(await client.call_tool("create_note", args))["id"]
    )
