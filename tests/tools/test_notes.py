"""Note tools through the real app and the in-memory MCP client."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import REPO, MakeApp, connected, error, ok

DEFAULT_POLICY = REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml"
# Reads every owner's notes and may delete notes, but holds no notes:write_all.
AUDITOR = '\n[roles.auditor]\nscopes = ["notes:read", "notes:write", "notes:delete", "notes:read_all"]\n'

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


async def test_delete_then_get_is_not_found(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_role="admin")) as client:
        created = ok(await client.call_tool("create_note", {"title": "a", "body": "b"}))
        assert ok(await client.call_tool("delete_note", {"note_id": created["id"]})) == {
            "id": created["id"],
            "deleted": True,
            "confirmed": None,
            "reason": None,
        }
        assert error(await client.call_tool("get_note", {"note_id": created["id"]})).startswith("not_found:")


async def test_the_default_agent_role_neither_lists_nor_runs_delete_note(client: Client) -> None:
    created = ok(await client.call_tool("create_note", {"title": "a", "body": "b"}))
    assert "delete_note" not in {tool.name for tool in (await client.list_tools()).tools}
    refused = error(await client.call_tool("delete_note", {"note_id": created["id"]}))
    assert refused.startswith("permission_denied:") and "'notes:delete'" in refused
    assert ok(await client.call_tool("get_note", {"note_id": created["id"]}))["body"] == "b"


async def _alices_note(make_app: MakeApp) -> dict[str, object]:
    async with connected(make_app(stdio_principal="alice")) as alice:
        return ok(await alice.call_tool("create_note", {"title": "alice", "body": "mine"}))


async def test_read_all_reads_but_cannot_change_or_delete_another_owners_note(
    make_app: MakeApp, tmp_path: Path
) -> None:
    note = await _alices_note(make_app)
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + AUDITOR)
    async with connected(make_app(policy_file=policy, stdio_principal="root", stdio_role="auditor")) as auditor:
        assert ok(await auditor.call_tool("get_note", {"note_id": note["id"]}))["body"] == "mine"
        for tool, arguments in [
            ("update_note", {"note_id": note["id"], "body": "root was here"}),
            ("delete_note", {"note_id": note["id"]}),
        ]:
            refused = error(await auditor.call_tool(tool, arguments))
            assert refused.startswith("permission_denied:") and "'notes:write_all'" in refused, refused
        own = ok(await auditor.call_tool("create_note", {"title": "root", "body": "b"}))
        assert ok(await auditor.call_tool("update_note", {"note_id": own["id"], "body": "c"}))["version"] == 2
        assert ok(await auditor.call_tool("delete_note", {"note_id": own["id"]}))["deleted"]
    async with connected(make_app(stdio_principal="alice")) as alice:
        assert ok(await alice.call_tool("get_note", {"note_id": note["id"]})) == note


async def test_write_all_changes_and_deletes_another_owners_note(make_app: MakeApp) -> None:
    note = await _alices_note(make_app)
    async with connected(make_app(stdio_principal="root", stdio_role="admin")) as admin:
        updated = ok(
            await admin.call_tool("update_note", {"note_id": note["id"], "body": "fixed", "expected_version": 1})
        )
        assert (updated["owner"], updated["body"], updated["version"]) == ("alice", "fixed", 2)
        assert ok(await admin.call_tool("delete_note", {"note_id": note["id"]}))["deleted"]
    async with connected(make_app(stdio_principal="alice")) as alice:
        assert error(await alice.call_tool("get_note", {"note_id": note["id"]})).startswith("not_found:")


async def test_another_agent_cannot_change_a_note_it_cannot_see(make_app: MakeApp) -> None:
    note = await _alices_note(make_app)
    missing = "note_0123456789abcdef"
    async with connected(make_app(stdio_principal="bob")) as bob:
        hidden = error(await bob.call_tool("update_note", {"note_id": note["id"], "body": "x"}))
        absent = error(await bob.call_tool("update_note", {"note_id": missing, "body": "x"}))
    assert hidden.replace(str(note["id"]), "<id>") == absent.replace(missing, "<id>")
    assert hidden.startswith("not_found:")


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
