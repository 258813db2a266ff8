"""SQLite storage (WAL): notes, tickets, comments, the docs index, idempotency keys and versions.

One writer connection (group commit) and a pool of read-only connections, used from worker threads.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

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
    Priority,
    Ticket,
    TicketSummary,
    Visibility,
)
from mcp_desk.domain.sla import DEFAULT_TERMS, SlaTerms
from mcp_desk.storage import history
from mcp_desk.storage.base import NewComment, NoteScope, TicketChanges
from mcp_desk.storage.common import check_version, fingerprint, new_id
from mcp_desk.storage.cursor import decode_cursor, encode_cursor, invalid_cursor
from mcp_desk.storage.search import SEARCH_WINDOW
from mcp_desk.storage.sla import SlaJudge, clock_table, counts_sql, micros_of, state_clauses, state_sql
from mcp_desk.storage.sqlite import rows
from mcp_desk.storage.sqlite.connection import READERS, Connection, ReaderPool
from mcp_desk.storage.sqlite.migrations import MIGRATIONS, migrate
from mcp_desk.storage.sqlite.search import docs_page, fts_query, note_expression, note_search, ticket_search

log = structlog.get_logger()
# What a list item shows: never the body (up to 64 KiB a note, read for nothing).
SUMMARY_COLUMNS = "n.id, n.title, n.tags, n.version, n.updated_at, n.seq"
_KEPT_INTENT = "SELECT 1 FROM audit_journal WHERE chain = ? AND seq <= ? LIMIT 1"


class SqliteStorage:
    """Notes, tickets and the docs index in one SQLite file. Satisfies `mcp_desk.storage.base.Storage`."""

    def __init__(
        self,
        path: Path,
        *,
        search_window: int = SEARCH_WINDOW,
        durability: Literal["power", "process"] = "power",
        readers: int = READERS,
        clock: Clock = utc_now,
        sla_terms: Mapping[Priority, SlaTerms] = DEFAULT_TERMS,
    ) -> None:
        self.path = path
        self.clock = clock
        self.sla = SlaJudge(terms=sla_terms, clock=clock)
        self._sla_state = state_sql(sla_terms, rows.micros)
        self.search_window = search_window
        self.durability = durability
        self.readers = readers
        self._writer: Connection | None = None
        self._reader: ReaderPool | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Create the file, apply migrations, and close cleanly (with a WAL checkpoint) on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = Connection(self.path, readonly=False, synchronous="FULL" if self.durability == "power" else "NORMAL")
        try:
            await writer.run(migrate)
        except BaseException:
            writer.close()
            raise
        self._writer, self._reader = writer, ReaderPool(self.path, size=self.readers)
        log.info("storage_opened", schema_version=len(MIGRATIONS))
        try:
            yield
        finally:
            self._reader.close()
            await self._writer.commits.close()  # every queued write is committed before the file closes
            await self._writer.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            self._writer.close()
            self._writer = self._reader = None
            log.info("storage_closed")

    def now(self) -> str:
        """The clock's current time as stored."""
        return format_ts(self.clock())

    @property
    def w(self) -> Connection:
        if self._writer is None:
            raise RuntimeError("storage is not open")
        return self._writer

    @property
    def r(self) -> ReaderPool:
        if self._reader is None:
            raise RuntimeError("storage is not open")
        return self._reader

    async def probe(self) -> None:
        """A real write and read round trip, for /health."""
        token = secrets.token_hex(4)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS health_probe (k INTEGER PRIMARY KEY, v TEXT)")
            conn.execute("INSERT OR REPLACE INTO health_probe (k, v) VALUES (1, ?)", (token,))

        await self.w.transaction(write)
        row = await self.r.run(lambda c: c.execute("SELECT v FROM health_probe WHERE k = 1").fetchone())
        if row is None or row[0] != token:
            raise RuntimeError("storage probe read back a different value")

    # --- audit intents (mcp_desk.intents): committed by `Connection.transaction` with each write ---

    async def journaled_intents(self, chain: str) -> list[tuple[int, str]]:
        """The intents of `chain` still kept, as (seq, record JSON), oldest first."""
        found = await self.w.run(
            lambda c: c.execute(
                "SELECT seq, record FROM audit_journal WHERE chain = ? ORDER BY seq", (chain,)
            ).fetchall()
        )
        return [(int(seq), str(record)) for seq, record in found]

    async def forget_intents(self, chain: str, upto: int) -> None:
        """Delete the intents of `chain` up to seq `upto` (the audit file holds them durably).

        Looked for on a reader first: most rounds find nothing, and a read costs no commit.
        """
        args = (chain, upto)
        if await self.r.run(lambda c: c.execute(_KEPT_INTENT, args).fetchone() is not None):
            await self.w.transaction(
                lambda c: c.execute("DELETE FROM audit_journal WHERE chain = ? AND seq <= ?", args)
            )

    # --- notes ---------------------------------------------------------------------------------

    async def create_note(
        self, *, owner: str, title: str, body: str, tags: Sequence[str], idempotency_key: str | None
    ) -> Note:
        """Insert a note; a repeated idempotency key returns the note it created."""

        scope = NoteScope(owner=owner)

        def tx(conn: sqlite3.Connection) -> sqlite3.Row:
            # The fingerprint is only needed with an idempotency key; the row is read back in the same
            # transaction (one worker-thread hop per note instead of two).
            digest = "" if idempotency_key is None else fingerprint(title, body, list(tags))
            existing = rows.idempotent(conn, f"{owner}:create_note", idempotency_key, digest)
            if existing is not None:
                return rows.note_row(conn, existing, scope)
            note_id, ts = new_id("note"), self.now()
            conn.execute(
                "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                (note_id, owner, title, body, json.dumps(list(tags)), ts, ts),
            )
            rows.remember(conn, f"{owner}:create_note", idempotency_key, digest, note_id, ts=ts)
            return rows.note_row(conn, note_id, scope)

        return rows.note(await self.w.transaction(tx))

    async def get_note(self, note_id: str, scope: NoteScope, *, writer: bool = False) -> Note:
        """Fetch a visible note or raise NotFound (the same for missing and foreign)."""
        conn = self.w if writer else self.r
        row = await conn.run(lambda c: rows.note_row(c, note_id, scope))
        return rows.note(row)

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

        def tx(conn: sqlite3.Connection) -> None:
            row = rows.note_row(conn, note_id, scope)
            check_version("note", note_id, row["version"], expected_version)
            conn.execute(
                "UPDATE notes SET title = ?, body = ?, tags = ?, version = version + 1, updated_at = ? WHERE seq = ?",
                (
                    row["title"] if title is None else title,
                    row["body"] if body is None else body,
                    row["tags"] if tags is None else json.dumps(list(tags)),
                    self.now(),
                    row["seq"],
                ),
            )

        await self.w.transaction(tx)
        return await self.get_note(note_id, scope, writer=True)

    async def delete_note(self, note_id: str, scope: NoteScope) -> None:
        """Delete a visible note and its links to tickets."""

        def tx(conn: sqlite3.Connection) -> None:
            row = rows.note_row(conn, note_id, scope)
            conn.execute("DELETE FROM notes WHERE seq = ?", (row["seq"],))

        await self.w.transaction(tx)

    async def list_notes(
        self, scope: NoteScope, *, tag: str | None, cursor: str | None, limit: int
    ) -> Page[NoteSummary]:
        """Visible notes, most recently updated first."""
        after = decode_cursor(cursor, "notes", 2)
        where, args = rows.note_visibility(scope, "n")
        if tag is not None:
            where += " AND EXISTS (SELECT 1 FROM json_each(n.tags) WHERE value = ?)"
            args.append(tag)
        if after is not None:
            where += " AND (n.updated_at, n.seq) < (?, ?)"
            args.extend(after)
        sql = f"SELECT {SUMMARY_COLUMNS} FROM notes n WHERE {where} ORDER BY n.updated_at DESC, n.seq DESC LIMIT ?"  # noqa: S608  # clauses are constants; values are bound
        found = await self.r.run(lambda c: c.execute(sql, (*args, limit + 1)).fetchall())
        items = [rows.note_summary(r) for r in found[:limit]]
        nxt = (
            encode_cursor(["notes", found[limit - 1]["updated_at"], found[limit - 1]["seq"]])
            if len(found) > limit
            else None
        )
        return Page[NoteSummary](items=items, next_cursor=nxt)

    async def search_notes(self, scope: NoteScope, query: str, *, cursor: str | None, limit: int) -> Page[NoteSummary]:
        """Full-text search over title, body and tags of visible notes, best match first."""
        search, expression = note_search(scope, window=self.search_window), note_expression(scope, query)
        found, nxt = await self.r.run(lambda c: search.page(c, expression, query, cursor, limit))
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

        def tx(conn: sqlite3.Connection) -> str:
            digest = fingerprint(title, description, priority, list(tags), *_named(requester))
            existing = rows.idempotent(conn, f"{created_by}:create_ticket", idempotency_key, digest)
            if existing is not None:
                return existing
            at = self.clock()
            ticket_id, ts = new_id("tkt"), format_ts(at)
            state = history.TicketState(
                title=title,
                description=description,
                priority=priority,
                tags=list(tags),
                assignee=None,
                status="open",
                requester=requester,
            )
            cur = conn.execute(
                "INSERT INTO tickets (id, title, description, status, priority, tags, created_by, created_at,"
                " updated_at, requester) VALUES (?,?,?,'open',?,?,?,?,?,?)",
                (ticket_id, title, description, priority, json.dumps(list(tags)), created_by, ts, ts, requester),
            )
            seq = int(cur.lastrowid or 0)
            rows.insert_history(conn, seq, history.created(state, at=at, actor=created_by))
            rows.reindex_ticket(conn, seq)
            rows.remember(conn, f"{created_by}:create_ticket", idempotency_key, digest, ticket_id, ts=ts)
            return ticket_id

        ticket_id = await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def get_ticket(self, ticket_id: str, *, writer: bool = False) -> Ticket:
        """A ticket with its oldest comments (capped), the total count, linked note ids and its SLA as of now."""
        conn = self.w if writer else self.r
        return self.sla.ticket(await conn.run(lambda c: rows.ticket(c, rows.ticket_row(c, ticket_id))))

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

        def tx(conn: sqlite3.Connection) -> None:
            row = rows.ticket_row(conn, ticket_id)
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
                rows.apply_plan(conn, row, plan)

        await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def add_comment(
        self, ticket_id: str, *, author: str, body: str, visibility: Visibility = "internal"
    ) -> Comment:
        """Append a comment (with its history entry); the ticket's version and updated time move with it."""
        comment = NewComment(author=author, body=body, visibility=visibility)

        def tx(conn: sqlite3.Connection) -> Comment:
            row = rows.ticket_row(conn, ticket_id)
            plan, written = history.plan_comment(ticket_id, rows.ticket_state(row), comment, at=self.clock())
            rows.apply_plan(conn, row, plan)
            return written

        return await self.w.transaction(tx)

    async def link_note(self, ticket_id: str, note_id: str, scope: NoteScope) -> Ticket:
        """Link a note the caller can see to a ticket (linking twice is harmless and records nothing)."""

        def tx(conn: sqlite3.Connection) -> None:
            row = rows.ticket_row(conn, ticket_id)
            rows.note_row(conn, note_id, scope)
            at = self.clock()
            ts = format_ts(at)
            cur = conn.execute(
                "INSERT OR IGNORE INTO ticket_notes (ticket_seq, note_id, created_at) VALUES (?,?,?)",
                (row["seq"], note_id, ts),
            )
            if cur.rowcount:
                conn.execute("UPDATE tickets SET version = version + 1, updated_at = ? WHERE seq = ?", (ts, row["seq"]))
                entry = history.record(at=at, actor=scope.owner, kind="linked", detail={"note_id": note_id})
                rows.insert_history(conn, row["seq"], entry)

        await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def ticket_history(self, ticket_id: str, *, cursor: str | None, limit: int) -> Page[HistoryEntry]:
        """A ticket's history, oldest first (NotFound for a missing ticket)."""
        after = decode_cursor(cursor, "history", 1)
        seq = None if after is None else _seq(after[0])
        items, last = await self.r.run(lambda c: rows.history_page(c, ticket_id, seq, limit))
        return Page[HistoryEntry](items=items, next_cursor=None if last is None else encode_cursor(["history", last]))

    async def record_export(self, ticket_id: str, *, actor: str, filename: str) -> HistoryEntry:
        """Record that a ticket was exported (the ticket itself, and its version, stay as they are)."""

        def tx(conn: sqlite3.Connection) -> HistoryEntry:
            row = rows.ticket_row(conn, ticket_id)
            entry = history.record(at=self.clock(), actor=actor, kind="exported", detail={"filename": filename})
            rows.insert_history(conn, row["seq"], entry)
            return entry.entry(ticket_id)

        return await self.w.transaction(tx)

    async def delete_ticket(self, ticket_id: str) -> None:
        """Delete a ticket with its comments and links."""

        def tx(conn: sqlite3.Connection) -> None:
            row = rows.ticket_row(conn, ticket_id)
            conn.execute("DELETE FROM tickets WHERE seq = ?", (row["seq"],))
            conn.execute("DELETE FROM tickets_fts WHERE rowid = ?", (row["seq"],))

        await self.w.transaction(tx)

    async def list_tickets(
        self,
        *,
        status: str | None,
        priority: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
        sla_state: str | None = None,
    ) -> Page[TicketSummary]:
        """Tickets of every status by default, most recently updated first; `sla_state` filters on the SLA now."""
        after = decode_cursor(cursor, "tickets", 2)
        now = self.clock()
        tables, clauses, args = "tickets", ["1 = 1"], list[object]()
        if sla_state is not None:  # the clock's placeholder comes first in the statement, so its value does too
            tables, args = f"tickets, {clock_table('?')}", [micros_of(now)]
            clauses += state_clauses(sla_state, self._sla_state, "?")
            args.append(sla_state)
        for column, value in (("status", status), ("priority", priority), ("assignee", assignee)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if after is not None:
            clauses.append("(updated_at, seq) < (?, ?)")
            args.extend(after)
        sql = f"SELECT tickets.* FROM {tables} WHERE {' AND '.join(clauses)} ORDER BY updated_at DESC, seq DESC LIMIT ?"  # noqa: S608  # constant clauses
        found = await self.r.run(lambda c: c.execute(sql, (*args, limit + 1)).fetchall())
        items = [rows.ticket_summary(r, sla_state=self.sla.state(r, now)) for r in found[:limit]]
        last = found[limit - 1] if len(found) > limit else None
        nxt = encode_cursor(["tickets", last["updated_at"], last["seq"]]) if last is not None else None
        return Page[TicketSummary](items=items, next_cursor=nxt)

    async def search_tickets(self, query: str, *, cursor: str | None, limit: int) -> Page[TicketSummary]:
        """Full-text search over title, description and comments, best match first."""
        search, expression = ticket_search(window=self.search_window), fts_query(query)
        now = self.clock()
        found, nxt = await self.r.run(lambda c: search.page(c, expression, query, cursor, limit))
        items = [rows.ticket_summary(r, r["snip"], self.sla.state(r, now)) for r in found]
        return Page[TicketSummary](items=items, next_cursor=nxt)

    async def ticket_counts(self) -> dict[str, int]:
        """Number of tickets in each status (for the mcp_desk_tickets gauge)."""
        found = await self.r.run(lambda c: c.execute("SELECT status, count(*) FROM tickets GROUP BY status").fetchall())
        return {row[0]: row[1] for row in found}

    async def sla_counts(self) -> dict[tuple[str, str], int]:
        """Open tickets (not resolved or closed) by (priority, SLA state) now, for the mcp_desk_sla_tickets gauge."""
        sql, now = counts_sql(self._sla_state, "?"), micros_of(self.clock())
        found = await self.r.run(lambda c: c.execute(sql, (now,)).fetchall())
        return {(row["priority"], row["sla_state"]): row["n"] for row in found}

    async def ticket_ids(self, prefix: str, limit: int) -> list[str]:
        """Ticket ids starting with `prefix`, newest first (for completions)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = "SELECT id FROM tickets WHERE id LIKE ? ESCAPE '\\' ORDER BY updated_at DESC LIMIT ?"
        found = await self.r.run(lambda c: c.execute(sql, (pattern, limit)).fetchall())
        return [row[0] for row in found]

    # --- docs ----------------------------------------------------------------------------------

    async def index_docs(self, docs: Sequence[Doc]) -> None:
        """Replace the docs index with `docs` in one transaction."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM docs")
            conn.execute("DELETE FROM docs_fts")
            for doc in docs:
                conn.execute("INSERT INTO docs VALUES (?,?,?)", (doc.id, doc.title, doc.content))
                conn.execute(
                    "INSERT INTO docs_fts (path, title, content) VALUES (?,?,?)", (doc.id, doc.title, doc.content)
                )

        await self.w.transaction(tx)

    async def search_docs(
        self, query: str, *, cursor: str | None, limit: int, any_word: bool = False
    ) -> Page[DocSummary]:
        """Full-text search over the knowledge base, best match first (all words, or any with `any_word`)."""
        items, nxt = await self.r.run(lambda c: docs_page(c, query, cursor=cursor, limit=limit, any_word=any_word))
        return Page[DocSummary](items=items, next_cursor=nxt)


def _seq(value: object) -> int:
    """A cursor's row number (a forged cursor with another type is refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_cursor()
    return value


def _named(requester: str | None) -> list[str]:
    """The requester as a fingerprint part: none without one, so keys used before requesters existed still match."""
    return [] if requester is None else [requester]
