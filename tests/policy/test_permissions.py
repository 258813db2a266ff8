"""Permissions: scopes for tools, resources and prompts; note read and write scopes; the shared NotFound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_desk.domain.principal import ALL_SCOPES, Principal
from mcp_desk.errors import NotFound, PermissionDenied
from mcp_desk.policy.permissions import (
    NoteScope,
    authorize,
    can_change_note,
    can_read_note,
    can_use,
    ensure_note_writable,
    has_scope,
    note_not_found,
    note_read_scope,
    note_write_scope,
    require_scope,
    visible_tools,
)
from mcp_desk.policy.pipeline import READ_ONLY, ToolCall, ToolSpec, build_chain
from mcp_desk.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.anyio


async def _tool() -> None: ...


SPECS = [
    ToolSpec(name="list_notes", fn=_tool, scope="notes:read", annotations=READ_ONLY),
    ToolSpec(name="delete_ticket", fn=_tool, scope="tickets:delete"),
    ToolSpec(name="get_usage", fn=_tool, scope=None, annotations=READ_ONLY),
]


def _principal(pid: str = "alice", *scopes: str) -> Principal:
    return Principal(id=pid, role="custom", scopes=frozenset(scopes))


def _call(spec: ToolSpec, principal: Principal) -> ToolCall:
    return ToolCall(spec=spec, principal=principal, arguments={}, request_id="r1")


async def _endpoint(call: ToolCall) -> dict[str, Any]:
    return {"ran": call.spec.name}


async def test_a_call_with_the_scope_reaches_the_endpoint() -> None:
    chain = build_chain([authorize], _endpoint)
    assert await chain(_call(SPECS[0], _principal("alice", "notes:read"))) == {"ran": "list_notes"}


async def test_a_call_without_the_scope_is_denied_naming_the_scope() -> None:
    chain = build_chain([authorize], _endpoint)
    with pytest.raises(PermissionDenied, match="delete_ticket needs scope 'tickets:delete'") as info:
        await chain(_call(SPECS[1], _principal("alice", "notes:read")))
    assert info.value.context["scope"] == "tickets:delete"


async def test_a_tool_without_a_scope_is_open_to_everyone() -> None:
    chain = build_chain([authorize], _endpoint)
    assert await chain(_call(SPECS[2], _principal("nobody"))) == {"ran": "get_usage"}


def test_visible_tools_lists_only_usable_tools_in_order() -> None:
    reader = _principal("a", "notes:read")
    assert [spec.name for spec in visible_tools(reader, SPECS)] == ["list_notes", "get_usage"]
    assert [can_use(reader, spec) for spec in SPECS] == [True, False, True]


def test_require_scope_is_the_same_check_for_resources_and_prompts() -> None:
    require_scope(_principal("a", "docs:read"), "docs:read", "docs://runbooks/disk.md")
    require_scope(_principal("a"), None, "prompt triage_ticket")
    assert has_scope(_principal("a"), None)
    assert not has_scope(_principal("a"), "tickets:read")
    with pytest.raises(PermissionDenied, match="prompt triage_ticket needs scope 'tickets:read'"):
        require_scope(_principal("a"), "tickets:read", "prompt triage_ticket")


def test_write_all_is_in_the_scope_catalogue() -> None:
    assert {"notes:read_all", "notes:write_all"} <= ALL_SCOPES


def test_note_scopes_are_own_notes_unless_the_all_owners_scope_is_held() -> None:
    agent = _principal("bob", "notes:read", "notes:write")
    reader = _principal("root", "notes:read", "notes:read_all")
    writer = _principal("root", "notes:write", "notes:write_all")
    assert note_read_scope(agent) == NoteScope(owner="bob") == note_write_scope(agent)
    assert note_read_scope(reader) == NoteScope(owner="root", all_owners=True)
    assert note_write_scope(reader) == NoteScope(owner="root")
    assert note_read_scope(writer) == NoteScope(owner="root")
    assert note_write_scope(writer) == NoteScope(owner="root", all_owners=True)


def test_read_all_reads_but_does_not_change_another_owners_note() -> None:
    reader = _principal("root", "notes:read", "notes:write", "notes:read_all")
    assert can_read_note(reader, "alice")
    assert not can_change_note(reader, "alice")
    with pytest.raises(PermissionDenied, match="needs scope 'notes:write_all'") as info:
        ensure_note_writable(reader, owner="alice", note_id="n1")
    assert info.value.context["scope"] == "notes:write_all"


def test_write_all_changes_another_owners_note() -> None:
    admin = _principal("root", "notes:read", "notes:write", "notes:read_all", "notes:write_all")
    assert can_change_note(admin, "alice")
    ensure_note_writable(admin, owner="alice", note_id="n1")


def test_the_owner_changes_its_own_note_and_others_see_it_as_missing() -> None:
    ensure_note_writable(_principal("alice", "notes:write"), owner="alice", note_id="n1")
    bob = _principal("bob", "notes:read", "notes:write")
    assert not can_read_note(bob, "alice")
    with pytest.raises(NotFound) as hidden:
        ensure_note_writable(bob, owner="alice", note_id="n1")
    assert hidden.value.public == note_not_found("n1").public


async def test_storage_reports_an_invisible_note_with_the_shared_not_found(tmp_path: Path) -> None:
    """Storage applies the scope it is given; what it raises for another owner's note is `note_not_found`."""
    store = SqliteStorage(tmp_path / "desk.db")
    async with store.open():
        note = await store.create_note(owner="alice", title="t", body="b", tags=[], idempotency_key=None)
        with pytest.raises(NotFound) as foreign:
            await store.get_note(note.id, note_read_scope(_principal("bob", "notes:read")))
        with pytest.raises(NotFound) as missing:
            await store.get_note("note_missing", note_read_scope(_principal("bob", "notes:read")))
    assert foreign.value.public == note_not_found(note.id).public
    assert missing.value.public == note_not_found("note_missing").public
