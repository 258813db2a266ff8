"""Ports the tools depend on. A PostgreSQL backend implements the same Protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mcp_desk.domain.access import NoteScope as NoteScope
from mcp_desk.domain.models import (
    Comment,
    Doc,
    DocSummary,
    HistoryEntry,
    Note,
    NoteSummary,
    Page,
    Ticket,
    TicketSummary,
    Visibility,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketChanges:
    """Fields of an update; None leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    priority: str | None = None
    tags: Sequence[str] | None = None
    assignee: str | None = None
    status: str | None = None
    requester: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NewComment:
    """A comment written together with a ticket change."""

    author: str
    body: str
    visibility: Visibility = "internal"


class NoteStore(Protocol):
    """Notes, private to their owner."""

    async def create_note(
        self, *, owner: str, title: str, body: str, tags: Sequence[str], idempotency_key: str | None
    ) -> Note: ...
    async def get_note(self, note_id: str, scope: NoteScope) -> Note: ...
    async def update_note(
        self,
        note_id: str,
        scope: NoteScope,
        *,
        title: str | None,
        body: str | None,
        tags: Sequence[str] | None,
        expected_version: int | None,
    ) -> Note: ...
    async def delete_note(self, note_id: str, scope: NoteScope) -> None: ...
    async def list_notes(
        self, scope: NoteScope, *, tag: str | None, cursor: str | None, limit: int
    ) -> Page[NoteSummary]: ...
    async def search_notes(
        self, scope: NoteScope, query: str, *, cursor: str | None, limit: int
    ) -> Page[NoteSummary]: ...


class TicketStore(Protocol):
    """The shared ticket queue with comments and links to notes.

    Every change records exactly one history entry in its own transaction (actor, time, changed fields);
    a refused change (missing ticket, stale version, disallowed transition) and a no-op record nothing.
    """

    async def create_ticket(
        self,
        *,
        created_by: str,
        title: str,
        description: str,
        priority: str,
        tags: Sequence[str],
        idempotency_key: str | None,
        requester: str | None = None,
    ) -> Ticket: ...
    async def get_ticket(self, ticket_id: str) -> Ticket: ...
    async def update_ticket(
        self,
        ticket_id: str,
        changes: TicketChanges,
        *,
        actor: str,
        expected_version: int | None,
        comment: NewComment | None = None,
        history_kind: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> Ticket: ...
    async def add_comment(
        self, ticket_id: str, *, author: str, body: str, visibility: Visibility = "internal"
    ) -> Comment: ...
    async def ticket_history(self, ticket_id: str, *, cursor: str | None, limit: int) -> Page[HistoryEntry]: ...
    async def record_export(self, ticket_id: str, *, actor: str, filename: str) -> HistoryEntry: ...
    async def link_note(self, ticket_id: str, note_id: str, scope: NoteScope) -> Ticket: ...
    async def delete_ticket(self, ticket_id: str) -> None: ...
    async def list_tickets(
        self, *, status: str | None, priority: str | None, assignee: str | None, cursor: str | None, limit: int
    ) -> Page[TicketSummary]: ...
    async def search_tickets(self, query: str, *, cursor: str | None, limit: int) -> Page[TicketSummary]: ...
    async def ticket_counts(self) -> dict[str, int]: ...
    async def ticket_ids(self, prefix: str, limit: int) -> list[str]: ...


class DocIndex(Protocol):
    """Full-text index over the knowledge base (the files stay the source of truth)."""

    async def index_docs(self, docs: Sequence[Doc]) -> None: ...
    async def search_docs(
        self, query: str, *, cursor: str | None, limit: int, any_word: bool = False
    ) -> Page[DocSummary]: ...


class Storage(NoteStore, TicketStore, DocIndex, Protocol):
    """Everything the tools need from persistence, plus lifecycle and a health probe."""

    def open(self) -> AbstractAsyncContextManager[None]: ...
    async def probe(self) -> None: ...


@runtime_checkable
class Pooled(Protocol):
    """A backend with a connection pool (PostgreSQL): its connections by state, for the pool gauge."""

    def pool_state(self) -> Mapping[str, int]: ...
