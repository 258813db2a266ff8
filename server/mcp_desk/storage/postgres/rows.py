"""Row-level helpers of the PostgreSQL repository (run on a connection, inside a transaction or a read)."""

from __future__ import annotations

from typing import Any

from mcp_desk.domain.models import HistoryEntry, Note, NoteSummary, Ticket
from mcp_desk.errors import NotFound
from mcp_desk.storage import history, mapping
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.common import check_idempotent_reuse

COMMENTS_SHOWN = 50
COMMENTS_INDEXED = 500
NOTE_COLUMNS = "seq, id, owner, title, body, tags, version, created_at, updated_at"
TICKET_COLUMNS = (
    "seq, id, title, description, status, priority, assignee, tags, created_by, version, created_at, updated_at,"
    " requester, first_responded_at, waiting_since, paused_seconds, resolved_at"
)
NOTE_SUMMARY_COLUMNS = "seq, id, title, tags, version, updated_at"
# The summary's own columns, and those its SLA state is computed from.
TICKET_SUMMARY_COLUMNS = (
    "seq, id, title, status, priority, assignee, version, updated_at,"
    " created_at, first_responded_at, waiting_since, paused_seconds, resolved_at"
)


def micros(column: str) -> str:
    """SQL for a stored timestamp column (`2026-01-05T09:00:00.123456Z`) as whole microseconds since the epoch."""
    return f"(extract(epoch FROM ({column})::timestamptz) * 1000000)::bigint"


class Params:
    """Numbered placeholders (`$1`, `$2`, ...) for a statement built from optional clauses."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


async def claim(conn: Any, scope: str, key: str, fingerprint: str, object_id: str, *, ts: str) -> str | None:
    """Reserve an idempotency key for `object_id`; the id it already names if it was taken (Conflict on misuse).

    The primary key on (scope, key) decides: a concurrent claim of the same key waits for the first
    transaction and then finds its row, so a key creates one object however many calls race on it.
    """
    claimed = await conn.fetchval(
        "INSERT INTO idempotency (scope, key, fingerprint, object_id, created_at) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (scope, key) DO NOTHING RETURNING object_id",
        scope,
        key,
        fingerprint,
        object_id,
        ts,
    )
    if claimed is not None:
        return None
    found = await conn.fetchrow(
        "SELECT fingerprint, object_id FROM idempotency WHERE scope = $1 AND key = $2", scope, key
    )
    check_idempotent_reuse(found["fingerprint"], fingerprint)
    return str(found["object_id"])


async def note_row(conn: Any, note_id: str, scope: NoteScope, *, lock: bool = False) -> Any:
    """A visible note's row (locked for update with `lock`); NotFound (the same for missing and foreign)."""
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(f"SELECT {NOTE_COLUMNS} FROM notes WHERE id = $1{suffix}", note_id)  # noqa: S608  # constants
    if row is None or not (scope.all_owners or row["owner"] == scope.owner):
        raise NotFound(f"note {note_id} not found; list_notes or search_notes shows the notes you can use")
    return row


async def ticket_row(conn: Any, ticket_id: str, *, lock: bool = False) -> Any:
    """A ticket's row (locked for update with `lock`), or NotFound."""
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1{suffix}", ticket_id)  # noqa: S608  # constants
    if row is None:
        raise NotFound(f"ticket {ticket_id} not found; list_tickets or search_tickets shows existing tickets")
    return row


def ticket_state(row: Any) -> history.TicketState:
    """The fields of a tickets row that changes touch."""
    return history.TicketState.of(row, tags=list(row["tags"]))


async def apply_plan(conn: Any, row: Any, plan: history.Plan) -> Any:
    """Write an accepted change in the caller's transaction: the ticket's new state, its comment, its history entry.

    Returns the updated tickets row.
    """
    state = plan.state
    updated = await conn.fetchrow(
        "UPDATE tickets SET title = $1, description = $2, priority = $3, tags = $4, assignee = $5, status = $6,"  # noqa: S608  # constant columns
        " requester = $7, first_responded_at = $8, waiting_since = $9, paused_seconds = $10, resolved_at = $11,"
        f" version = version + 1, updated_at = $12 WHERE seq = $13 RETURNING {TICKET_COLUMNS}",
        state.title,
        state.description,
        state.priority,
        state.tags,
        state.assignee,
        state.status,
        state.requester,
        state.first_responded_at,
        state.waiting_since,
        state.paused_seconds,
        state.resolved_at,
        plan.record.at,
        row["seq"],
    )
    if plan.comment is not None:
        c = plan.comment
        await conn.execute(
            "INSERT INTO comments (id, ticket_seq, author, body, created_at, visibility)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            c.id,
            row["seq"],
            c.author,
            c.body,
            c.created_at,
            c.visibility,
        )
        await reindex_comments(conn, row["seq"])
    await insert_history(conn, row["seq"], plan.record)
    return updated


async def insert_history(conn: Any, ticket_seq: int, record: history.Record) -> None:
    """Append one history entry to a ticket."""
    await conn.execute(
        "INSERT INTO ticket_history (id, ticket_seq, at, actor, kind, changes, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
        record.id,
        ticket_seq,
        record.at,
        record.actor,
        record.kind,
        record.changes_json(),
        record.detail_json(),
    )


async def history_page(
    conn: Any, ticket_id: str, after: int | None, limit: int
) -> tuple[list[HistoryEntry], int | None]:
    """A ticket's history entries after `after` (a seq), oldest first, and the seq to continue after (or None)."""
    row = await ticket_row(conn, ticket_id)
    found = await conn.fetch(
        "SELECT seq, id, at, actor, kind, changes::text AS changes, detail::text AS detail FROM ticket_history"
        " WHERE ticket_seq = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        row["seq"],
        -1 if after is None else after,
        limit + 1,
    )
    items = [mapping.history_entry(r, ticket_id=ticket_id) for r in found[:limit]]
    return items, found[limit - 1]["seq"] if len(found) > limit else None


async def reindex_comments(conn: Any, seq: int) -> None:
    """Rewrite the comment text a ticket's search vector is built from (its first comments)."""
    await conn.execute(
        "UPDATE tickets SET comments_text = coalesce((SELECT string_agg(body, E'\\n' ORDER BY seq) FROM "
        "(SELECT body, seq FROM comments WHERE ticket_seq = $1 ORDER BY seq LIMIT $2) AS first), '') WHERE seq = $1",
        seq,
        COMMENTS_INDEXED,
    )


def note(row: Any) -> Note:
    """A notes row as the domain model."""
    return mapping.note(row, tags=list(row["tags"]))


def note_summary(row: Any, snippet: str | None = None) -> NoteSummary:
    """A notes row as a list or search item."""
    return mapping.note_summary(row, tags=list(row["tags"]), snippet=snippet)


async def ticket(conn: Any, row: Any) -> Ticket:
    """A tickets row with its oldest comments (capped), the comment count and linked note ids."""
    comments = await conn.fetch(
        "SELECT id, author, body, created_at, visibility FROM comments WHERE ticket_seq = $1 ORDER BY seq LIMIT $2",
        row["seq"],
        COMMENTS_SHOWN,
    )
    count = await conn.fetchval("SELECT count(*) FROM comments WHERE ticket_seq = $1", row["seq"])
    links = await conn.fetch(
        "SELECT note_id FROM ticket_notes WHERE ticket_seq = $1 ORDER BY created_at, note_id", row["seq"]
    )
    linked = [link["note_id"] for link in links]
    return mapping.ticket(row, tags=list(row["tags"]), comments=comments, comment_count=count, linked_notes=linked)


ticket_summary = mapping.ticket_summary
