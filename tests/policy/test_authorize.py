"""Authorization: scope checks for tools, resources and prompts; owner isolation for notes."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import NotFound, PermissionDenied
from mcp_desk.policy.authorize import (
    authorize,
    can_see_note,
    ensure_note_visible,
    ensure_note_writable,
    note_not_found,
    owner_filter,
    require_scope,
    visible_tools,
)
from mcp_desk.policy.pipeline import READ_ONLY, ToolCall, ToolSpec, build_chain

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
    names = [spec.name for spec in visible_tools(_principal("a", "notes:read"), SPECS)]
    assert names == ["list_notes", "get_usage"]


def test_require_scope_is_the_same_check_for_resources_and_prompts() -> None:
    require_scope(_principal("a", "docs:read"), "docs:read", "docs://runbooks/disk.md")
    require_scope(_principal("a"), None, "prompt triage_ticket")
    with pytest.raises(PermissionDenied, match="prompt triage_ticket needs scope 'tickets:read'"):
        require_scope(_principal("a"), "tickets:read", "prompt triage_ticket")


def test_another_owners_note_is_indistinguishable_from_a_missing_one() -> None:
    bob = _principal("bob", "notes:read")
    with pytest.raises(NotFound) as hidden:
        ensure_note_visible(bob, owner="alice", note_id="n1")
    assert hidden.value.public == note_not_found("n1").public
    ensure_note_visible(bob, owner="bob", note_id="n2")


def test_read_all_scope_sees_every_note_but_lists_are_filtered_otherwise() -> None:
    admin = _principal("root", "notes:read", "notes:read_all")
    assert can_see_note(admin, "alice")
    assert owner_filter(admin) is None
    assert owner_filter(_principal("bob", "notes:read")) == "bob"


def test_only_the_owner_may_change_a_note() -> None:
    ensure_note_writable(_principal("alice", "notes:write"), owner="alice", note_id="n1")
    with pytest.raises(NotFound):
        ensure_note_writable(_principal("bob", "notes:write"), owner="alice", note_id="n1")
    with pytest.raises(PermissionDenied, match="only its owner"):
        ensure_note_writable(_principal("root", "notes:write", "notes:read_all"), owner="alice", note_id="n1")
