"""PostgreSQL storage: notes, tickets, comments, the docs index, idempotency keys and versions.

The database enforces the rules replicas race on: an idempotency key is claimed by the primary key
of `idempotency` (a concurrent reuse waits for the first and returns its object), and a versioned
update locks its row (`SELECT ... FOR UPDATE`) before comparing versions, so of two writers holding
the same `expected_version` exactly one wins. Every multi-row change is one transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog

from mcp_desk.domain.clock import Clock, format_ts, utc_now
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
from mcp_desk.storage import history
from mcp_desk.storage.base import NewComment, NoteScope, TicketChanges
from mcp_desk.storage.common import check_version, fingerprint, new_id
from mcp_desk.storage.cursor import decode_cursor, encode_cursor, invalid_cursor
from mcp_desk.storage.postgres import rows
from mcp_desk.storage.postgres.connection import Database, PoolConfig
from mcp_desk.storage.postgres.migrations import MIGRATIONS, migrate
from mcp_desk.storage.postgres.rows import (
    NOTE_COLUMNS,
    NOTE_SUMMARY_COLUMNS,
    TICKET_COLUMNS,
    TICKET_SUMMARY_COLUMNS,
    Params,
)
from mcp_desk.storage.postgres.search import docs_page, note_search, ticket_search
from mcp_desk.storage.search import SEARCH_WINDOW

log = structlog.get_logger()


class PostgresStorage:
    """Notes, tickets and the docs index in PostgreSQL. Satisfies `mcp_desk.storage.base.Storage`."""

    def __init__(
        self,
        url: str,
        *,
        pool: PoolConfig | None = None,
        search_window: int = SEARCH_WINDOW,
        clock: Clock = utc_now,
    ) -> None:
        self.db = Database(url, pool)
        self.search_window = search_window
        self.clock = clock

    def now(self) -> str:
        """The clock's current time as stored."""
        return format_ts(self.clock())

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Connect the pool, apply pending migrations (under the advisory lock), close the pool on exit."""
        await self.db.open()
        try:
            await self.migrate()
            log.info("storage_opened", schema_version=len(MIGRATIONS), backend="postgresql", database=self.db.where)
            yield
        finally:
            await self.db.close()
            log.info("storage_closed", backend="postgresql")

    async def migrate(self) -> int:
        """Apply pending migrations; the schema version afterwards."""
        return await self.db.read(migrate)

    def pool_state(self) -> dict[str, int]:
        """Pool connections by state, for the pool gauge."""
        return self.db.pool_state()

    async def probe(self) -> None:
        """A real write and read round trip, for /health."""
        token = secrets.token_hex(4)

        async def write(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO health_probe (k, v) VALUES (1, $1) ON CONFLICT (k) DO UPDATE SET v = excluded.v", token
            )

        await self.db.transaction(write)
        # Another replica may probe in between: any value proves the round trip; ours proves our write.
        value = await self.db.read(lambda conn: conn.fetchval("SELECT v FROM health_probe WHERE k = 1"))
        if value is None:
            raise RuntimeError("storage probe read back nothing")

    # --- notes ---------------------------------------------------------------------------------

    async def create_note(
        self, *, owner: str, title: str, body: str, tags: Sequence[str], idempotency_key: str | None
    ) -> Note:
        """Insert a note; a repeated idempotency key returns the note it created."""
        scope = NoteScope(owner=owner)

        async def tx(conn: Any) -> Any:
            note_id, ts = new_id("note"), self.now()
            if idempotency_key is not None:
                digest = fingerprint(title, body, list(tags))
                existing = await rows.claim(conn, f"{owner}:create_note", idempotency_key, digest, note_id, ts=ts)
                if existing is not None:
                    return await rows.note_row(conn, existing, scope)
            return await conn.fetchrow(
                "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) "  # noqa: S608  # constant columns
                f"VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {NOTE_COLUMNS}",
                note_id,
                owner,
                title,
                body,
                list(tags),
                ts,
            )

        return rows.note(await self.db.transaction(tx))

    async def get_note(self, note_id: str, scope: NoteScope) -> Note:
        """Fetch a visible note or raise NotFound (the same for missing and foreign)."""
        return rows.note(await self.db.read(lambda conn: rows.note_row(conn, note_id, scope)))

    async def update_note(
        self,
        note_id: str,
        scope: NoteScope,
        *,
        title: str | None,
        body: str | None,
        tags: Sequence[str] | None,
        expected_version: int | None,
    ) -> Note:
        """Change the given fields and bump the version; a stale expected_version is a Conflict."""

        async def tx(conn: Any) -> Any:
            row = await rows.note_row(conn, note_id, scope, lock=True)
            check_version("note", note_id, row["version"], expected_version)
            return await conn.fetchrow(
                "UPDATE notes SET title = coalesce($1, title), body = coalesce($2, body), tags = coalesce($3, tags),"  # noqa: S608  # constant columns
                f" version = version + 1, updated_at = $4 WHERE seq = $5 RETURNING {NOTE_COLUMNS}",
                title,
                body,
                None if tags is None else list(tags),
                self.now(),
                row["seq"],
            )

        return rows.note(await self.db.transaction(tx))

    async def delete_note(self, note_id: str, scope: NoteScope) -> None:
        """Delete a visible note and its links to tickets."""

        async def tx(conn: Any) -> None:
            row = await rows.note_row(conn, note_id, scope, lock=True)
            await conn.execute("DELETE FROM notes WHERE seq = $1", row["seq"])

        await self.db.transaction(tx)

    async def list_notes(
        self, scope: NoteScope, *, tag: str | None, cursor: str | None, limit: int
    ) -> Page[NoteSummary]:
        """Visible notes, most recently updated first."""
        after = decode_cursor(cursor, "notes", 2)
        p, clauses = Params(), ["true"]
        if not scope.all_owners:
            clauses.append(f"owner = {p(scope.owner)}")
        if tag is not None:
            clauses.append(f"{p(tag)} = ANY(tags)")
        if after is not None:
            clauses.append(f"(updated_at, seq) < ({p(str(after[0]))}, {p(_seq(after[1]))})")
        sql = (
            f"SELECT {NOTE_SUMMARY_COLUMNS} FROM notes WHERE {' AND '.join(clauses)} "  # noqa: S608  # constant clauses
            f"ORDER BY updated_at DESC, seq DESC LIMIT {p(limit + 1)}"
        )
        found = await self.db.read(lambda conn: conn.fetch(sql, *p.values))
        items = [rows.note_summary(r) for r in found[:limit]]
        last = found[limit - 1] if len(found) > limit else None
        nxt = encode_cursor(["notes", last["updated_at"], last["seq"]]) if last is not None else None
        return Page[NoteSummary](items=items, next_cursor=nxt)

    async def search_notes(self, scope: NoteScope, query: str, *, cursor: str | None, limit: int) -> Page[NoteSummary]:
        """Full-text search over title, body and tags of visible notes, best match first."""
        search = note_search(scope, NOTE_SUMMARY_COLUMNS, window=self.search_window)
        found, nxt = await self.db.read(lambda conn: search.page(conn, query, cursor, limit))
        return Page[NoteSummary](items=[rows.note_summary(r, r["snip"]) for r in found], next_cursor=nxt)

    # --- tickets -------------------------------------------------------------------------------

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
    ) -> Ticket:
        """Open a ticket with its `created` history entry; a repeated idempotency key returns the ticket it created."""

        async def tx(conn: Any) -> Ticket:
            at = self.clock()
            ticket_id, ts = new_id("tkt"), format_ts(at)
            if idempotency_key is not None:
                digest = fingerprint(title, description, priority, list(tags), requester)
                scope = f"{created_by}:create_ticket"
                existing = await rows.claim(conn, scope, idempotency_key, digest, ticket_id, ts=ts)
                if existing is not None:
                    return await rows.ticket(conn, await rows.ticket_row(conn, existing))
            row = await conn.fetchrow(
                "INSERT INTO tickets (id, title, description, status, priority, tags, created_by, created_at,"  # noqa: S608  # constant columns
                " updated_at, requester) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $7, $8)"
                f" RETURNING {TICKET_COLUMNS}",
                ticket_id,
                title,
                description,
                priority,
                list(tags),
                created_by,
                ts,
                requester,
            )
            await rows.insert_history(
                conn, row["seq"], history.created(rows.ticket_state(row), at=at, actor=created_by)
            )
            return await rows.ticket(conn, row)

        return await self.db.transaction(tx)

    async def get_ticket(self, ticket_id: str) -> Ticket:
        """A ticket with its oldest comments (capped), the total count and linked note ids."""

        async def read(conn: Any) -> Ticket:
            return await rows.ticket(conn, await rows.ticket_row(conn, ticket_id))

        return await self.db.read(read)

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
    ) -> Ticket:
        """Apply changes (a status change must be an allowed transition), an optional comment and one history entry.

        All in one transaction; a change that changes nothing writes nothing (no entry, same version).
        """

        async def tx(conn: Any) -> Ticket:
            row = await rows.ticket_row(conn, ticket_id, lock=True)
            check_version("ticket", ticket_id, row["version"], expected_version)
            plan = history.plan_update(
                ticket_id,
                rows.ticket_state(row),
                changes,
                at=self.clock(),
                actor=actor,
                comment=comment,
                history_kind=history_kind,
                detail=detail,
            )
            if plan is not None:
                row = await rows.apply_plan(conn, row, plan, comment)
            return await rows.ticket(conn, row)

        return await self.db.transaction(tx)

    async def add_comment(
        self, ticket_id: str, *, author: str, body: str, visibility: Visibility = "internal"
    ) -> Comment:
        """Append a comment (with its history entry); the ticket's version and updated time move with it."""
        comment = NewComment(author=author, body=body, visibility=visibility)

        async def tx(conn: Any) -> Comment:
            row = await rows.ticket_row(conn, ticket_id, lock=True)
            plan = history.plan_update(
                ticket_id, rows.ticket_state(row), TicketChanges(), at=self.clock(), actor=author, comment=comment
            )
            assert plan is not None  # noqa: S101  # a comment always makes a change
            await rows.apply_plan(conn, row, plan, comment)
            return rows.written_comment(row, plan, comment)

        return await self.db.transaction(tx)

    async def link_note(self, ticket_id: str, note_id: str, scope: NoteScope) -> Ticket:
        """Link a note the caller can see to a ticket (linking twice is harmless and records nothing)."""

        async def tx(conn: Any) -> Ticket:
            row = await rows.ticket_row(conn, ticket_id, lock=True)
            await rows.note_row(conn, note_id, scope, lock=True)  # a concurrent delete_note waits for the link
            at = self.clock()
            linked = await conn.fetchval(
                "INSERT INTO ticket_notes (ticket_seq, note_id, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING note_id",
                row["seq"],
                note_id,
                format_ts(at),
            )
            if linked is not None:
                row = await conn.fetchrow(
                    f"UPDATE tickets SET version = version + 1, updated_at = $1 WHERE seq = $2 RETURNING {TICKET_COLUMNS}",  # noqa: S608, E501  # constants
                    format_ts(at),
                    row["seq"],
                )
                entry = history.record(at=at, actor=scope.owner, kind="linked", detail={"note_id": note_id})
                await rows.insert_history(conn, row["seq"], entry)
            return await rows.ticket(conn, row)

        return await self.db.transaction(tx)

    async def ticket_history(self, ticket_id: str, *, cursor: str | None, limit: int) -> Page[HistoryEntry]:
        """A ticket's history, oldest first (NotFound for a missing ticket)."""
        after = decode_cursor(cursor, "history", 1)
        seq = None if after is None else _seq(after[0])
        items, last = await self.db.read(lambda conn: rows.history_page(conn, ticket_id, seq, limit))
        return Page[HistoryEntry](items=items, next_cursor=None if last is None else encode_cursor(["history", last]))

    async def record_export(self, ticket_id: str, *, actor: str, filename: str) -> HistoryEntry:
        """Record that a ticket was exported (the ticket itself, and its version, stay as they are)."""

        async def tx(conn: Any) -> HistoryEntry:
            row = await rows.ticket_row(conn, ticket_id, lock=True)
            entry = history.record(at=self.clock(), actor=actor, kind="exported", detail={"filename": filename})
            await rows.insert_history(conn, row["seq"], entry)
            return entry.entry(ticket_id)

        return await self.db.transaction(tx)

    async def delete_ticket(self, ticket_id: str) -> None:
        """Delete a ticket with its comments and links."""

        async def tx(conn: Any) -> None:
            row = await rows.ticket_row(conn, ticket_id, lock=True)
            await conn.execute("DELETE FROM tickets WHERE seq = $1", row["seq"])

        await self.db.transaction(tx)

    async def list_tickets(
        self, *, status: str | None, priority: str | None, assignee: str | None, cursor: str | None, limit: int
    ) -> Page[TicketSummary]:
        """Tickets of every status by default, most recently updated first."""
        after = decode_cursor(cursor, "tickets", 2)
        p, clauses = Params(), ["true"]
        for column, value in (("status", status), ("priority", priority), ("assignee", assignee)):
            if value is not None:
                clauses.append(f"{column} = {p(value)}")
        if after is not None:
            clauses.append(f"(updated_at, seq) < ({p(str(after[0]))}, {p(_seq(after[1]))})")
        sql = (
            f"SELECT {TICKET_SUMMARY_COLUMNS} FROM tickets WHERE {' AND '.join(clauses)} "  # noqa: S608  # constant clauses
            f"ORDER BY updated_at DESC, seq DESC LIMIT {p(limit + 1)}"
        )
        found = await self.db.read(lambda conn: conn.fetch(sql, *p.values))
        items = [rows.ticket_summary(r) for r in found[:limit]]
        last = found[limit - 1] if len(found) > limit else None
        nxt = encode_cursor(["tickets", last["updated_at"], last["seq"]]) if last is not None else None
        return Page[TicketSummary](items=items, next_cursor=nxt)

    async def search_tickets(self, query: str, *, cursor: str | None, limit: int) -> Page[TicketSummary]:
        """Full-text search over title, description and comments, best match first."""
        search = ticket_search(TICKET_SUMMARY_COLUMNS, window=self.search_window)
        found, nxt = await self.db.read(lambda conn: search.page(conn, query, cursor, limit))
        return Page[TicketSummary](items=[rows.ticket_summary(r, r["snip"]) for r in found], next_cursor=nxt)

    async def ticket_counts(self) -> dict[str, int]:
        """Number of tickets in each status (for the mcp_desk_tickets gauge)."""
        found = await self.db.read(lambda conn: conn.fetch("SELECT status, count(*) FROM tickets GROUP BY status"))
        return {row[0]: row[1] for row in found}

    async def ticket_ids(self, prefix: str, limit: int) -> list[str]:
        """Ticket ids starting with `prefix`, newest first (for completions)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = "SELECT id FROM tickets WHERE id LIKE $1 ESCAPE '\\' ORDER BY updated_at DESC LIMIT $2"
        found = await self.db.read(lambda conn: conn.fetch(sql, pattern, limit))
        return [row[0] for row in found]

    # --- docs ----------------------------------------------------------------------------------

    async def index_docs(self, docs: Sequence[Doc]) -> None:
        """Replace the docs index with `docs` in one transaction (replicas indexing at once take turns)."""

        async def tx(conn: Any) -> None:
            await conn.execute("LOCK TABLE docs IN EXCLUSIVE MODE")
            await conn.execute("DELETE FROM docs")
            await conn.executemany(
                "INSERT INTO docs (path, title, content) VALUES ($1, $2, $3)",
                [(doc.id, doc.title, doc.content) for doc in docs],
            )

        await self.db.transaction(tx)

    async def search_docs(
        self, query: str, *, cursor: str | None, limit: int, any_word: bool = False
    ) -> Page[DocSummary]:
        """Full-text search over the knowledge base, best match first (all words, or any with `any_word`)."""
        items, nxt = await self.db.read(
            lambda conn: docs_page(conn, query, cursor=cursor, limit=limit, any_word=any_word)
        )
        return Page[DocSummary](items=items, next_cursor=nxt)


def _seq(value: Any) -> int:
    """A cursor's row number (a forged cursor with another type is refused, not sent to the database)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_cursor()
    return value
