"""Row-level helpers of the SQLite repository (run inside worker threads, within a transaction or read)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mcp_desk.domain.models import HistoryEntry, Note, NoteSummary, Ticket
from mcp_desk.errors import NotFound
from mcp_desk.storage import history, mapping
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.common import check_idempotent_reuse

COMMENTS_SHOWN = 50


def micros(column: str) -> str:
    """SQL for a stored timestamp column (`2026-01-05T09:00:00.123456Z`) as whole microseconds since the epoch."""
    seconds = f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
    return f"({seconds} * 1000000 + CAST(substr({column}, 21, 6) AS INTEGER))"


def idempotent(conn: sqlite3.Connection, scope: str, key: str | None, fingerprint: str) -> str | None:
    """The id an idempotency key already created, None if it is new (Conflict if its arguments differ)."""
    if key is None:
        return None
    row = conn.execute("SELECT fingerprint, object_id FROM idempotency WHERE scope = ? AND key = ?", (scope, key))
    found = row.fetchone()
    if found is None:
        return None
    check_idempotent_reuse(found["fingerprint"], fingerprint)
    return str(found["object_id"])


def remember(
    conn: sqlite3.Connection, scope: str, key: str | None, fingerprint: str, object_id: str, *, ts: str
) -> None:
    """Record what an idempotency key created (nothing without a key)."""
    if key is not None:
        conn.execute("INSERT INTO idempotency VALUES (?,?,?,?,?)", (scope, key, fingerprint, object_id, ts))


def note_visibility(scope: NoteScope, alias: str) -> tuple[str, list[Any]]:
    """SQL condition (and its values) for the notes `scope` may see."""
    if scope.all_owners:
        return "1 = 1", []
    return f"{alias}.owner = ?", [scope.owner]


def note_row(conn: sqlite3.Connection, note_id: str, scope: NoteScope) -> sqlite3.Row:
    """A visible note's row; NotFound (the same for missing and foreign) otherwise."""
    row: sqlite3.Row | None = conn.execute("SELECT * FROM notes WHERE id = ?", (note_id,)).fetchone()
    if row is None or not (scope.all_owners or row["owner"] == scope.owner):
        raise NotFound(f"note {note_id} not found; list_notes or search_notes shows the notes you can use")
    return row


def ticket_row(conn: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
    """A ticket's row, or NotFound."""
    row: sqlite3.Row | None = conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise NotFound(f"ticket {ticket_id} not found; list_tickets or search_tickets shows existing tickets")
    return row


def ticket_state(row: sqlite3.Row) -> history.TicketState:
    """The fields of a tickets row that changes touch."""
    return history.TicketState.of(row, tags=json.loads(row["tags"]))


def apply_plan(conn: sqlite3.Connection, row: sqlite3.Row, plan: history.Plan) -> None:
    """Write an accepted change in the caller's transaction: the ticket's new state, its comment, its history entry."""
    columns = plan.state.columns() | {"tags": json.dumps(plan.state.tags), "ts": plan.record.at, "seq": row["seq"]}
    conn.execute(
        "UPDATE tickets SET title = :title, description = :description, priority = :priority, tags = :tags,"
        " assignee = :assignee, status = :status, requester = :requester, first_responded_at = :first_responded_at,"
        " waiting_since = :waiting_since, paused_seconds = :paused_seconds, resolved_at = :resolved_at,"
        " version = version + 1, updated_at = :ts WHERE seq = :seq",
        columns,
    )
    if plan.comment is not None:
        c = plan.comment
        conn.execute(
            "INSERT INTO comments (id, ticket_seq, author, body, created_at, visibility) VALUES (?,?,?,?,?,?)",
            (c.id, row["seq"], c.author, c.body, c.created_at, c.visibility),
        )
    insert_history(conn, row["seq"], plan.record)
    reindex_ticket(conn, row["seq"])


def insert_history(conn: sqlite3.Connection, ticket_seq: int, record: history.Record) -> None:
    """Append one history entry to a ticket."""
    conn.execute(
        "INSERT INTO ticket_history (id, ticket_seq, at, actor, kind, changes, detail) VALUES (?,?,?,?,?,?,?)",
        (record.id, ticket_seq, record.at, record.actor, record.kind, record.changes_json(), record.detail_json()),
    )


def history_page(
    conn: sqlite3.Connection, ticket_id: str, after: int | None, limit: int
) -> tuple[list[HistoryEntry], int | None]:
    """A ticket's history entries after `after` (a seq), oldest first, and the seq to continue after (or None)."""
    row = ticket_row(conn, ticket_id)
    found = conn.execute(
        "SELECT seq, id, at, actor, kind, changes, detail FROM ticket_history WHERE ticket_seq = ? AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (row["seq"], -1 if after is None else after, limit + 1),
    ).fetchall()
    items = [mapping.history_entry(r, ticket_id=ticket_id) for r in found[:limit]]
    return items, found[limit - 1]["seq"] if len(found) > limit else None


def reindex_ticket(conn: sqlite3.Connection, seq: int) -> None:
    """Rewrite a ticket's full-text entry from its fields and first comments."""
    row = conn.execute("SELECT title, description FROM tickets WHERE seq = ?", (seq,)).fetchone()
    comments = conn.execute("SELECT body FROM comments WHERE ticket_seq = ? ORDER BY seq LIMIT 500", (seq,)).fetchall()
    conn.execute("DELETE FROM tickets_fts WHERE rowid = ?", (seq,))
    conn.execute(
        "INSERT INTO tickets_fts (rowid, title, description, comments) VALUES (?,?,?,?)",
        (seq, row["title"], row["description"], "\n".join(c["body"] for c in comments)),
    )


def note(row: sqlite3.Row) -> Note:
    """A notes row as the domain model."""
    return mapping.note(row, tags=json.loads(row["tags"]))


def note_summary(row: sqlite3.Row, snippet: str | None = None) -> NoteSummary:
    """A notes row as a list or search item."""
    return mapping.note_summary(row, tags=json.loads(row["tags"]), snippet=snippet)


def ticket(conn: sqlite3.Connection, row: sqlite3.Row) -> Ticket:
    """A tickets row with its oldest comments (capped), the comment count and linked note ids."""
    comments = conn.execute(
        "SELECT * FROM comments WHERE ticket_seq = ? ORDER BY seq LIMIT ?", (row["seq"], COMMENTS_SHOWN)
    ).fetchall()
    count = conn.execute("SELECT count(*) FROM comments WHERE ticket_seq = ?", (row["seq"],)).fetchone()[0]
    links = conn.execute("SELECT note_id FROM ticket_notes WHERE ticket_seq = ? ORDER BY created_at", (row["seq"],))
    linked = [link[0] for link in links.fetchall()]
    return mapping.ticket(
        row, tags=json.loads(row["tags"]), comments=comments, comment_count=count, linked_notes=linked
    )


ticket_summary = mapping.ticket_summary
