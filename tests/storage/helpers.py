"""Scopes and small builders shared by the SQLite storage tests."""

from __future__ import annotations

from mcp_desk.domain.models import Note, Ticket
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.sqlite import SqliteStorage

ALICE = NoteScope(owner="alice")
BOB = NoteScope(owner="bob")
ADMIN = NoteScope(owner="root", all_owners=True)


async def note(
    store: SqliteStorage, owner: str = "alice", title: str = "t", body: str = "b", key: str | None = None
) -> Note:
    return await store.create_note(owner=owner, title=title, body=body, tags=["x"], idempotency_key=key)


async def ticket(store: SqliteStorage, title: str = "printer jam", key: str | None = None) -> Ticket:
    return await store.create_ticket(
        created_by="alice", title=title, description="d", priority="normal", tags=[], idempotency_key=key
    )
