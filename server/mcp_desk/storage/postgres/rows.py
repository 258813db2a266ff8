"""Row-level helpers of the PostgreSQL repository (run on a connection, inside a transaction or a read)."""

from __future__ import annotations

from typing import Any

from mcp_desk.domain.models import Comment, Note, NoteSummary, Ticket
from mcp_desk.errors import NotFound
from mcp_desk.storage import mapping
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.common import check_idempotent_reuse, new_id, now

COMMENTS_SHOWN = 50
COMMENTS_INDEXED = 500
NOTE_COLUMNS = "seq, id, owner, title, body, tags, version, created_at, updated_at"
TICKET_COLUMNS = (
    "seq, id, title, description, status, priority, assignee, tags, created_by, version, created_at, updated_at"
)
NOTE_SUMMARY_COLUMNS = "seq, id, title, tags, version, updated_at"
TICKET_SUMMARY_COLUMNS = "seq, id, title, status, priority, assignee, version, updated_at"


class Params:
    """Numbered placeholders (`$1`, `$2`, ...) for a statement built from optional clauses."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


async def claim(conn: Any, scope: str, key: str, fingerprint: str, object_id: str) -> str | None:
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
        now(),
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


async def insert_comment(conn: Any, ticket_seq: int, ticket_id: str, author: str, body: str) -> Comment:
    """Add a comment to a ticket and return it."""
    comment = Comment(id=new_id("cmt"), ticket_id=ticket_id, author=author, body=body, created_at=now())
    await conn.execute(
        "INSERT INTO comments (id, ticket_seq, author, body, created_at) VALUES ($1, $2, $3, $4, $5)",
        comment.id,
        ticket_seq,
        author,
        body,
        comment.created_at,
    )
    return comment


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
        "SELECT id, author, body, created_at FROM comments WHERE ticket_seq = $1 ORDER BY seq LIMIT $2",
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
