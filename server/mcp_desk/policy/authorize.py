"""Authorization: scopes for tools, resources and prompts, and owner isolation for notes.

Who raises what: `authorize` and `require_scope` raise PermissionDenied naming the missing scope
(the client sees `permission_denied: <what> needs scope 'x'`). Owner checks raise NotFound with
exactly the message a missing id gets, so guessing ids reveals nothing about other owners' notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import NotFound, PermissionDenied
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec

READ_ALL_NOTES = "notes:read_all"


def require_scope(principal: Principal, scope: str | None, what: str) -> None:
    """Raise PermissionDenied naming `scope` unless `principal` holds it (None = no scope needed)."""
    if scope is not None and not principal.has(scope):
        raise PermissionDenied(f"{what} needs scope '{scope}'", scope=scope, principal=principal.id)


def can_use(principal: Principal, spec: ToolSpec) -> bool:
    """True when `principal` may call (and so may see in `tools/list`) the tool."""
    return spec.scope is None or principal.has(spec.scope)


def visible_tools(principal: Principal, specs: Iterable[ToolSpec]) -> list[ToolSpec]:
    """The tools `principal` may use, in their given order (for `tools/list`)."""
    return [spec for spec in specs if can_use(principal, spec)]


async def authorize(call: ToolCall, call_next: Next) -> Any:
    """Guard: the tool's scope must be among the principal's scopes."""
    require_scope(call.principal, call.spec.scope, call.spec.name)
    return await call_next(call)


def note_not_found(note_id: str) -> NotFound:
    """The one NotFound for notes, used for missing ids and other owners' notes alike."""
    return NotFound(f"note {note_id} not found")


def can_see_note(principal: Principal, owner: str) -> bool:
    """True when the note belongs to `principal` or the principal may read all notes."""
    return owner == principal.id or principal.has(READ_ALL_NOTES)


def ensure_note_visible(principal: Principal, *, owner: str, note_id: str) -> None:
    """Raise the same NotFound as a missing id when `principal` may not see the note."""
    if not can_see_note(principal, owner):
        raise note_not_found(note_id)


def owner_filter(principal: Principal) -> str | None:
    """The owner to restrict note lists and searches to, or None when the principal may read all."""
    return None if principal.has(READ_ALL_NOTES) else principal.id


def ensure_note_writable(principal: Principal, *, owner: str, note_id: str) -> None:
    """Only the owner changes or deletes a note; others get NotFound, or PermissionDenied if they can see it."""
    ensure_note_visible(principal, owner=owner, note_id=note_id)
    if owner != principal.id:
        raise PermissionDenied(f"note {note_id} belongs to another principal; only its owner can change it")
