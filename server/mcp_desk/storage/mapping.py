"""Rows as domain models, the same for every backend: each backend decodes its own column types first."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from mcp_desk.domain.models import (
    Comment,
    HistoryEntry,
    Note,
    NoteSummary,
    SlaState,
    Ticket,
    TicketClock,
    TicketSummary,
)


class Row(Protocol):
    """A result row read by column name (sqlite3.Row, asyncpg.Record, a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def note(row: Row, *, tags: list[str]) -> Note:
    """A notes row as the domain model."""
    return Note(
        id=row["id"],
        title=row["title"],
        body=row["body"],
        tags=tags,
        owner=row["owner"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def note_summary(row: Row, *, tags: list[str], snippet: str | None) -> NoteSummary:
    """A notes row as a list or search item."""
    return NoteSummary(
        id=row["id"],
        title=row["title"],
        tags=tags,
        version=row["version"],
        updated_at=row["updated_at"],
        snippet=snippet,
    )


def ticket(
    row: Row, *, tags: list[str], comments: Iterable[Row], comment_count: int, linked_notes: Sequence[str]
) -> Ticket:
    """A tickets row with its oldest comments (capped), the comment count and linked note ids."""
    return Ticket(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        status=row["status"],
        priority=row["priority"],
        assignee=row["assignee"],
        tags=tags,
        created_by=row["created_by"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        requester=row["requester"],
        comments=[comment(c, ticket_id=row["id"]) for c in comments],
        comment_count=comment_count,
        linked_notes=list(linked_notes),
        clock=TicketClock(
            first_responded_at=row["first_responded_at"],
            waiting_since=row["waiting_since"],
            paused_seconds=row["paused_seconds"],
            resolved_at=row["resolved_at"],
        ),
    )


def comment(row: Row, *, ticket_id: str) -> Comment:
    """A comments row as the domain model."""
    return Comment(
        id=row["id"],
        ticket_id=ticket_id,
        author=row["author"],
        body=row["body"],
        created_at=row["created_at"],
        visibility=row["visibility"],
    )


def ticket_summary(row: Row, snippet: str | None = None, sla_state: SlaState | None = None) -> TicketSummary:
    """A tickets row as a list or search item (with its SLA state, when the backend judged it)."""
    return TicketSummary(
        id=row["id"],
        title=row["title"],
        status=row["status"],
        priority=row["priority"],
        assignee=row["assignee"],
        version=row["version"],
        updated_at=row["updated_at"],
        snippet=snippet,
        sla_state=sla_state,
    )


def history_entry(row: Row, *, ticket_id: str) -> HistoryEntry:
    """A ticket_history row (changes and detail as JSON text) as the domain model."""
    return HistoryEntry(
        id=row["id"],
        ticket_id=ticket_id,
        at=row["at"],
        actor=row["actor"],
        kind=row["kind"],
        changes=json.loads(row["changes"]),
        detail=json.loads(row["detail"]),
    )
