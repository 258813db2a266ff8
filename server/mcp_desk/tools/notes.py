"""Note tools: private notes owned by their creator."""

from __future__ import annotations

from mcp_desk.domain.access import NoteScope
from mcp_desk.domain.models import Model, Note, NoteSummary, Page
from mcp_desk.policy.permissions import ensure_note_writable, note_write_scope
from mcp_desk.policy.pipeline import DESTRUCTIVE, READ_ONLY, WRITE, ToolAnnotationsSpec, ToolSpec
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
    """Confirmation that an object is gone."""

    id: str
    deleted: bool = True


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


async def delete_note(env: ToolEnv, note_id: NoteId) -> Deleted:
    """Delete one of your notes permanently (links from tickets are removed too)."""
    await env.storage.delete_note(note_id, await _writable(env, note_id))
    return Deleted(id=note_id)


async def _writable(env: ToolEnv, note_id: str) -> NoteScope:
    """The write scope for a change to `note_id`, once the permissions policy allows the change.

    Reading first tells "not yours and invisible" (NotFound) from "visible but not yours to change"
    (PermissionDenied naming notes:write_all); storage then applies the write scope itself as well.
    """
    note = await env.storage.get_note(note_id, env.note_scope)
    ensure_note_writable(env.principal, owner=note.owner, note_id=note_id)
    return note_write_scope(env.principal)


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
