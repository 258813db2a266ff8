"""Permissions: the one place that decides scopes, tool visibility and note ownership.

Every surface asks this module: the `authorize` guard and the registry's `tools/list` filter, resources,
prompts and completions, and the note tools. Storage stays policy-free: it receives the `NoteScope`
computed here and only filters by it.

Who raises what: `authorize` and `require_scope` raise PermissionDenied naming the missing scope (the
client sees `permission_denied: <what> needs scope 'x'`). A note the caller may not read raises the same
NotFound as a missing id (`note_not_found`), so guessing ids reveals nothing about other owners' notes.
A note the caller may read but not change (another owner's, without `notes:write_all`) raises
PermissionDenied naming `notes:write_all`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp_desk.domain.access import NoteScope, note_not_found
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import PermissionDenied
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec

READ_ALL_NOTES = "notes:read_all"
WRITE_ALL_NOTES = "notes:write_all"

__all__ = [
    "READ_ALL_NOTES",
    "WRITE_ALL_NOTES",
    "NoteScope",
    "authorize",
    "can_change_note",
    "can_read_note",
    "can_use",
    "ensure_note_writable",
    "has_scope",
    "note_not_found",
    "note_read_scope",
    "note_write_scope",
    "require_scope",
    "visible_tools",
]


def has_scope(principal: Principal, scope: str | None) -> bool:
    """True when `principal` holds `scope` (None: nothing is needed)."""
    return scope is None or principal.has(scope)


def require_scope(principal: Principal, scope: str | None, what: str) -> None:
    """Raise PermissionDenied naming `scope` unless `principal` holds it (None = no scope needed)."""
    if not has_scope(principal, scope):
        raise PermissionDenied(f"{what} needs scope '{scope}'", scope=scope, principal=principal.id)


def can_use(principal: Principal, spec: ToolSpec) -> bool:
    """True when `principal` may call (and so may see in `tools/list`) the tool."""
    return has_scope(principal, spec.scope)


def visible_tools(principal: Principal, specs: Iterable[ToolSpec]) -> list[ToolSpec]:
    """The tools `principal` may use, in their given order (for `tools/list`)."""
    return [spec for spec in specs if can_use(principal, spec)]


async def authorize(call: ToolCall, call_next: Next) -> Any:
    """Guard: the tool's scope must be among the principal's scopes."""
    require_scope(call.principal, call.spec.scope, call.spec.name)
    return await call_next(call)


def can_read_note(principal: Principal, owner: str) -> bool:
    """True when the note is the principal's own, or the principal reads every owner's notes."""
    return owner == principal.id or principal.has(READ_ALL_NOTES)


def can_change_note(principal: Principal, owner: str) -> bool:
    """True when the note is the principal's own, or the principal changes every owner's notes."""
    return owner == principal.id or principal.has(WRITE_ALL_NOTES)


def note_read_scope(principal: Principal) -> NoteScope:
    """The notes `principal` may read: its own, or every owner's with `notes:read_all`."""
    return NoteScope(owner=principal.id, all_owners=principal.has(READ_ALL_NOTES))


def note_write_scope(principal: Principal) -> NoteScope:
    """The notes `principal` may change or delete: its own, or every owner's with `notes:write_all`."""
    return NoteScope(owner=principal.id, all_owners=principal.has(WRITE_ALL_NOTES))


def ensure_note_writable(principal: Principal, *, owner: str, note_id: str) -> None:
    """Refuse a change to a note: NotFound if the principal cannot even read it, else PermissionDenied."""
    if not can_read_note(principal, owner):
        raise note_not_found(note_id)
    if not can_change_note(principal, owner):
        raise PermissionDenied(
            f"note {note_id} belongs to another principal; changing or deleting it needs scope '{WRITE_ALL_NOTES}'",
            scope=WRITE_ALL_NOTES,
            principal=principal.id,
        )
