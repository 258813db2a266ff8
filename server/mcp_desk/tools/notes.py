"""Note tools: private notes owned by their creator."""

from __future__ import annotations

from mcp_types import InputRequiredResult
from pydantic import Field

from mcp_desk.domain.access import NoteScope
from mcp_desk.domain.models import Model, Note, NoteSummary, Page
from mcp_desk.policy.permissions import ensure_note_writable, note_write_scope
from mcp_desk.policy.pipeline import DESTRUCTIVE, READ_ONLY, WRITE, ToolAnnotationsSpec, ToolSpec
from mcp_desk.tools.confirm import Asked, confirm, describe
from mcp_desk.tools.env import (
    Body,
    Cursor,
    ExpectedVersion,
    IdempotencyKey,
    Limit,
    NoteId,
    Query,
    Tags,
    Title,
    ToolEnv,
)


class Deleted(Model):
    """What a delete did: gone (`deleted: true`), or kept because the user did not confirm (with the reason)."""

    id: str
    deleted: bool = True
    confirmed: bool | None = Field(
        default=None, description="true: the user confirmed; false: they declined or cancelled; null: not asked."
    )
    reason: str | None = Field(default=None, description="Why nothing was deleted, when deleted is false.")

    @classmethod
    def outcome(cls, object_id: str, asked: Asked) -> Deleted:
        """The result for `object_id` once asking went as `asked` (deleted only when it may proceed)."""
        if asked.proceed:
            return cls(id=object_id, confirmed=asked.confirmed)
        return cls(id=object_id, deleted=False, confirmed=asked.confirmed, reason=asked.reason)


async def create_note(
    env: ToolEnv, title: Title, body: Body, tags: Tags | None = None, idempotency_key: IdempotencyKey = None
) -> Note:
    """Create a private note owned by you. Returns the note with its id and version."""
    return await env.storage.create_note(
        owner=env.principal.id, title=title, body=body, tags=tags or [], idempotency_key=idempotency_key
    )


async def get_note(env: ToolEnv, note_id: NoteId) -> Note:
    """Fetch one of your notes by id."""
    return await env.storage.get_note(note_id, env.note_scope)


async def update_note(
    env: ToolEnv,
    note_id: NoteId,
    title: Title | None = None,
    body: Body | None = None,
    tags: Tags | None = None,
    expected_version: ExpectedVersion = None,
) -> Note:
    """Change a note's title, body or tags (omitted fields stay). Pass expected_version to avoid lost updates."""
    return await env.storage.update_note(
        note_id, await _writable(env, note_id), title=title, body=body, tags=tags, expected_version=expected_version
    )


async def delete_note(env: ToolEnv, note_id: NoteId) -> Deleted | InputRequiredResult:
    """Delete one of your notes permanently (links from tickets are removed too).

    The user is asked to confirm first when the client can ask; if they decline or cancel, nothing is deleted
    and the result says so (deleted: false, with the reason). Do not retry a declined delete on your own.
    """
    note = await _writable_note(env, note_id)
    question = describe("note", note_id, note.title)
    asked = await confirm(env, tool="delete_note", target=note_id, question=question)
    if asked.pending is not None:
        return asked.pending
    if asked.proceed:
        await env.storage.delete_note(note_id, note_write_scope(env.principal))
    return Deleted.outcome(note_id, asked)


async def _writable(env: ToolEnv, note_id: str) -> NoteScope:
    """The write scope for a change to `note_id`, once the permissions policy allows the change."""
    await _writable_note(env, note_id)
    return note_write_scope(env.principal)


async def _writable_note(env: ToolEnv, note_id: str) -> Note:
    """The note `note_id`, once the permissions policy allows the caller to change it.

    Reading first tells "not yours and invisible" (NotFound) from "visible but not yours to change"
    (PermissionDenied naming notes:write_all); storage then applies the write scope itself as well.
    """
    note = await env.storage.get_note(note_id, env.note_scope)
    ensure_note_writable(env.principal, owner=note.owner, note_id=note_id)
    return note


async def list_notes(
    env: ToolEnv, tag: str | None = None, cursor: Cursor = None, limit: Limit = 20
) -> Page[NoteSummary]:
    """List your notes, most recently updated first, optionally only those with a tag."""
    return await env.storage.list_notes(env.note_scope, tag=tag, cursor=cursor, limit=limit)


async def search_notes(env: ToolEnv, query: Query, cursor: Cursor = None, limit: Limit = 20) -> Page[NoteSummary]:
    """Full-text search of your notes' titles, bodies and tags, best match first."""
    return await env.storage.search_notes(env.note_scope, query, cursor=cursor, limit=limit)


TOOLS = [
    ToolSpec(name="create_note", fn=create_note, scope="notes:write", annotations=WRITE),
    ToolSpec(name="get_note", fn=get_note, scope="notes:read", annotations=READ_ONLY),
    ToolSpec(
        name="update_note", fn=update_note, scope="notes:write", annotations=ToolAnnotationsSpec(destructive=True)
    ),
    ToolSpec(name="delete_note", fn=delete_note, scope="notes:delete", annotations=DESTRUCTIVE),
    ToolSpec(name="list_notes", fn=list_notes, scope="notes:read", annotations=READ_ONLY),
    ToolSpec(name="search_notes", fn=search_notes, scope="notes:read", annotations=READ_ONLY),
]
