"""SQLite storage (WAL): one writer connection, one reader connection, each used from a worker thread."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from mcp_desk.domain.models import (
    Comment,
    Doc,
    DocSummary,
    Note,
    NoteSummary,
    Page,
    Ticket,
    TicketSummary,
    check_transition,
)
from mcp_desk.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from mcp_desk.storage.base import NoteScope, TicketChanges
from mcp_desk.storage.migrations import MIGRATIONS

log = structlog.get_logger()
R = TypeVar("R")
COMMENTS_SHOWN = 50
SEARCH_WINDOW = 300  # newest matches ranked per page window (see _WindowedSearch)
MAX_ROWID = 2**63 - 1
_WORD = re.compile(r"\w+", re.UNICODE)
_QUERY_WORD = re.compile(r"(\w+)(\*?)", re.UNICODE)
_UNAVAILABLE = (
    "nothing was saved: the database cannot be written right now (disk full or read-only storage); "
    "reads still work, try the write again later"
)


def now() -> str:
    """UTC timestamp with microseconds, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    """An unguessable, URI-safe identifier."""
    return f"{prefix}_{secrets.token_hex(8)}"


def fts_query(text: str, *, any_word: bool = False) -> str:
    """Turn free text into a safe FTS5 expression: every word quoted, all required (or any).

    A word written with a trailing `*` (two characters or more) matches as a prefix. Prefixes are opt-in:
    a prefix of four or more characters makes FTS5 merge the doclists of every matching term up front.
    """
    words = _QUERY_WORD.findall(text)[:32]
    if not words:
        raise InvalidInput("query has no searchable words; use letters or digits")
    quoted = [f'"{word}"*' if star and len(word) >= 2 else f'"{word}"' for word, star in words]
    return (" OR " if any_word else " ").join(quoted)


def owner_filter(expression: str, owner: str) -> str:
    """Restrict an FTS5 expression to one owner's rows (a superset; the SQL filter on the owner stays exact)."""
    words = _WORD.findall(owner)
    if not words:
        return expression
    return f'({expression}) AND owner : "{" ".join(words)}"'


def encode_cursor(payload: list[Any]) -> str:
    """Opaque cursor: clients pass back what they received."""
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str, arity: int) -> list[Any] | None:
    """Parse a cursor made by `encode_cursor` for this kind of listing."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if isinstance(payload, list) and len(payload) == arity + 1 and payload[0] == kind:
            return payload[1:]
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidInput("cursor is not valid for this listing; omit it to start from the first page")


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(slots=True)
class _Pending:
    """One queued write transaction and how it ended."""

    fn: Callable[[sqlite3.Connection], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


def _commit_batch(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
    """(Worker thread.) One transaction, a savepoint per queued function, one commit."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for pending in batch:
            conn.execute("SAVEPOINT tx")
            try:
                pending.result = pending.fn(conn)
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK TO tx")
                log.error("storage_write_failed", error=str(exc))
                pending.error = StorageUnavailable(_UNAVAILABLE)
            except Exception as exc:
                conn.execute("ROLLBACK TO tx")
                pending.error = exc
            conn.execute("RELEASE tx")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        log.error("storage_write_failed", error=str(exc))
        for pending in batch:
            pending.error, pending.result = StorageUnavailable(_UNAVAILABLE), None
    finally:
        for pending in batch:
            pending.done = True


class _Connection:
    """A sqlite3 connection used from worker threads, one statement batch at a time."""

    def __init__(self, path: Path, *, readonly: bool) -> None:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA cache_size = -16000")
        self.lock = threading.Lock()
        self.limiter = anyio.CapacityLimiter(1)
        self._queue: list[_Pending] = []
        self._commit_lock = anyio.Lock()

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        def call() -> R:
            with self.lock:
                return fn(self.conn)

        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    async def transaction(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run `fn` in a write transaction; return once that transaction is committed (durable).

        Group commit: transactions queued while a commit is in progress run together in the next one,
        each inside its own SAVEPOINT (an error undoes only that one's changes and goes to its caller
        alone), then one COMMIT (one fsync) makes them all durable before any caller is answered.
        """
        pending = _Pending(fn)
        self._queue.append(pending)
        async with self._commit_lock:
            if not pending.done:  # else a commit that ran while we waited for the lock took it
                batch, self._queue = self._queue, []
                await self.run(lambda conn: _commit_batch(conn, batch))
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[no-any-return]

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteStorage:
    """Notes, tickets and the docs index in one SQLite file. Satisfies `mcp_desk.storage.base.Storage`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Create the file, apply migrations, and close cleanly (with a WAL checkpoint) on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Connection(self.path, readonly=False)
        await self._writer.run(_migrate)
        self._reader = _Connection(self.path, readonly=True)
        log.info("storage_opened", schema_version=len(MIGRATIONS))
        try:
            yield
        finally:
            self._reader.close()
            await self._writer.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            self._writer.close()
            self._writer = self._reader = None
            log.info("storage_closed")

    @property
    def w(self) -> _Connection:
        if self._writer is None:
            raise RuntimeError("storage is not open")
        return self._writer

    @property
    def r(self) -> _Connection:
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

    # --- notes ---------------------------------------------------------------------------------

    async def create_note(
        self, *, owner: str, title: str, body: str, tags: Sequence[str], idempotency_key: str | None
    ) -> Note:
        """Insert a note; a repeated idempotency key returns the note it created."""

        scope = NoteScope(owner=owner)

        def tx(conn: sqlite3.Connection) -> sqlite3.Row:
            # The fingerprint is only needed with an idempotency key; the row is read back in the same
            # transaction (one worker-thread hop per note instead of two).
            fingerprint = "" if idempotency_key is None else _fingerprint(title, body, list(tags))
            existing = _idempotent(conn, f"{owner}:create_note", idempotency_key, fingerprint)
            if existing is not None:
                return _note_row(conn, existing, scope)
            note_id, ts = new_id("note"), now()
            conn.execute(
                "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                (note_id, owner, title, body, json.dumps(list(tags)), ts, ts),
            )
            _remember(conn, f"{owner}:create_note", idempotency_key, fingerprint, note_id)
            return _note_row(conn, note_id, scope)

        return _note(await self.w.transaction(tx))

    async def get_note(self, note_id: str, scope: NoteScope, *, writer: bool = False) -> Note:
        """Fetch a visible note or raise NotFound (the same for missing and foreign)."""
        conn = self.w if writer else self.r
        row = await conn.run(lambda c: _note_row(c, note_id, scope))
        return _note(row)

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
            row = _note_row(conn, note_id, scope)
            _check_version("note", note_id, row["version"], expected_version)
            conn.execute(
                "UPDATE notes SET title = ?, body = ?, tags = ?, version = version + 1, updated_at = ? WHERE seq = ?",
                (
                    row["title"] if title is None else title,
                    row["body"] if body is None else body,
                    row["tags"] if tags is None else json.dumps(list(tags)),
                    now(),
                    row["seq"],
                ),
            )

        await self.w.transaction(tx)
        return await self.get_note(note_id, scope, writer=True)

    async def delete_note(self, note_id: str, scope: NoteScope) -> None:
        """Delete a visible note and its links to tickets."""

        def tx(conn: sqlite3.Connection) -> None:
            row = _note_row(conn, note_id, scope)
            conn.execute("DELETE FROM notes WHERE seq = ?", (row["seq"],))

        await self.w.transaction(tx)

    async def list_notes(
        self, scope: NoteScope, *, tag: str | None, cursor: str | None, limit: int
    ) -> Page[NoteSummary]:
        """Visible notes, most recently updated first."""
        after = decode_cursor(cursor, "notes", 2)
        where, args = _note_visibility(scope, "n")
        if tag is not None:
            where += " AND EXISTS (SELECT 1 FROM json_each(n.tags) WHERE value = ?)"
            args.append(tag)
        if after is not None:
            where += " AND (n.updated_at, n.seq) < (?, ?)"
            args.extend(after)
        sql = f"SELECT n.* FROM notes n WHERE {where} ORDER BY n.updated_at DESC, n.seq DESC LIMIT ?"  # noqa: S608  # clauses are constants; values are bound
        rows = await self.r.run(lambda c: c.execute(sql, (*args, limit + 1)).fetchall())
        items = [_note_summary(r) for r in rows[:limit]]
        nxt = (
            encode_cursor(["notes", rows[limit - 1]["updated_at"], rows[limit - 1]["seq"]])
            if len(rows) > limit
            else None
        )
        return Page[NoteSummary](items=items, next_cursor=nxt)

    async def search_notes(self, scope: NoteScope, query: str, *, cursor: str | None, limit: int) -> Page[NoteSummary]:
        """Full-text search over title, body and tags of visible notes, best match first."""
        where, args = _note_visibility(scope, "n")
        expression = fts_query(query) if scope.all_owners else owner_filter(fts_query(query), scope.owner)
        search = _WindowedSearch(
            table="notes_fts",
            select="n.*, snippet(notes_fts, 1, '[', ']', '…', 16) AS snip",
            join="JOIN notes n ON n.seq = notes_fts.rowid",
            where=where,
            args=tuple(args),
            kind="note-search",
            scored="n.title AS title, substr(n.body, 1, 4096) || ' ' || n.tags AS text",
        )
        rows, nxt = await self.r.run(lambda c: search.page(c, expression, query, cursor, limit))
        return Page[NoteSummary](items=[_note_summary(r, r["snip"]) for r in rows], next_cursor=nxt)

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
    ) -> Ticket:
        """Open a ticket; a repeated idempotency key returns the ticket it created."""

        def tx(conn: sqlite3.Connection) -> str:
            fingerprint = _fingerprint(title, description, priority, list(tags))
            existing = _idempotent(conn, f"{created_by}:create_ticket", idempotency_key, fingerprint)
            if existing is not None:
                return existing
            ticket_id, ts = new_id("tkt"), now()
            cur = conn.execute(
                "INSERT INTO tickets (id, title, description, status, priority, tags, created_by, created_at,"
                " updated_at) VALUES (?,?,?,'open',?,?,?,?,?)",
                (ticket_id, title, description, priority, json.dumps(list(tags)), created_by, ts, ts),
            )
            _reindex_ticket(conn, int(cur.lastrowid or 0))
            _remember(conn, f"{created_by}:create_ticket", idempotency_key, fingerprint, ticket_id)
            return ticket_id

        ticket_id = await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def get_ticket(self, ticket_id: str, *, writer: bool = False) -> Ticket:
        """A ticket with its oldest comments (capped), the total count and linked note ids."""
        conn = self.w if writer else self.r
        return await conn.run(lambda c: _ticket(c, _ticket_row(c, ticket_id)))

    async def update_ticket(
        self,
        ticket_id: str,
        changes: TicketChanges,
        *,
        expected_version: int | None,
        comment_by: str | None = None,
        comment: str | None = None,
    ) -> Ticket:
        """Apply changes (a status change must be an allowed transition) and an optional comment, atomically."""

        def tx(conn: sqlite3.Connection) -> None:
            row = _ticket_row(conn, ticket_id)
            _check_version("ticket", ticket_id, row["version"], expected_version)
            if changes.status is not None and changes.status != row["status"]:
                check_transition(ticket_id, row["status"], changes.status)
            merged = {
                "title": row["title"] if changes.title is None else changes.title,
                "description": row["description"] if changes.description is None else changes.description,
                "priority": row["priority"] if changes.priority is None else changes.priority,
                "tags": row["tags"] if changes.tags is None else json.dumps(list(changes.tags)),
                "assignee": row["assignee"] if changes.assignee is None else changes.assignee or None,
                "status": row["status"] if changes.status is None else changes.status,
            }
            conn.execute(
                "UPDATE tickets SET title = :title, description = :description, priority = :priority, tags = :tags,"
                " assignee = :assignee, status = :status, version = version + 1, updated_at = :ts WHERE seq = :seq",
                {**merged, "ts": now(), "seq": row["seq"]},
            )
            if comment is not None and comment_by is not None:
                _insert_comment(conn, row["seq"], ticket_id, comment_by, comment)
            _reindex_ticket(conn, row["seq"])

        await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def add_comment(self, ticket_id: str, *, author: str, body: str) -> Comment:
        """Append a comment; the ticket's version and updated time move with it."""

        def tx(conn: sqlite3.Connection) -> Comment:
            row = _ticket_row(conn, ticket_id)
            comment = _insert_comment(conn, row["seq"], ticket_id, author, body)
            conn.execute("UPDATE tickets SET version = version + 1, updated_at = ? WHERE seq = ?", (now(), row["seq"]))
            _reindex_ticket(conn, row["seq"])
            return comment

        return await self.w.transaction(tx)

    async def link_note(self, ticket_id: str, note_id: str, scope: NoteScope) -> Ticket:
        """Link a note the caller can see to a ticket (linking twice is harmless)."""

        def tx(conn: sqlite3.Connection) -> None:
            row = _ticket_row(conn, ticket_id)
            _note_row(conn, note_id, scope)
            cur = conn.execute(
                "INSERT OR IGNORE INTO ticket_notes (ticket_seq, note_id, created_at) VALUES (?,?,?)",
                (row["seq"], note_id, now()),
            )
            if cur.rowcount:
                conn.execute(
                    "UPDATE tickets SET version = version + 1, updated_at = ? WHERE seq = ?", (now(), row["seq"])
                )

        await self.w.transaction(tx)
        return await self.get_ticket(ticket_id, writer=True)

    async def delete_ticket(self, ticket_id: str) -> None:
        """Delete a ticket with its comments and links."""

        def tx(conn: sqlite3.Connection) -> None:
            row = _ticket_row(conn, ticket_id)
            conn.execute("DELETE FROM tickets WHERE seq = ?", (row["seq"],))
            conn.execute("DELETE FROM tickets_fts WHERE rowid = ?", (row["seq"],))

        await self.w.transaction(tx)

    async def list_tickets(
        self, *, status: str | None, priority: str | None, assignee: str | None, cursor: str | None, limit: int
    ) -> Page[TicketSummary]:
        """Tickets of every status by default, most recently updated first."""
        after = decode_cursor(cursor, "tickets", 2)
        clauses, args = ["1 = 1"], []
        for column, value in (("status", status), ("priority", priority), ("assignee", assignee)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if after is not None:
            clauses.append("(updated_at, seq) < (?, ?)")
            args.extend(after)
        sql = f"SELECT * FROM tickets WHERE {' AND '.join(clauses)} ORDER BY updated_at DESC, seq DESC LIMIT ?"  # noqa: S608  # constant clauses
        rows = await self.r.run(lambda c: c.execute(sql, (*args, limit + 1)).fetchall())
        items = [_ticket_summary(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        nxt = encode_cursor(["tickets", last["updated_at"], last["seq"]]) if last is not None else None
        return Page[TicketSummary](items=items, next_cursor=nxt)

    async def search_tickets(self, query: str, *, cursor: str | None, limit: int) -> Page[TicketSummary]:
        """Full-text search over title, description and comments, best match first."""
        search = _WindowedSearch(
            table="tickets_fts",
            select="t.*, snippet(tickets_fts, -1, '[', ']', '…', 16) AS snip",
            join="JOIN tickets t ON t.seq = tickets_fts.rowid",
            where="1 = 1",
            args=(),
            kind="ticket-search",
            scored="t.title AS title, substr(t.description, 1, 4096) AS text",
        )
        rows, nxt = await self.r.run(lambda c: search.page(c, fts_query(query), query, cursor, limit))
        return Page[TicketSummary](items=[_ticket_summary(r, r["snip"]) for r in rows], next_cursor=nxt)

    async def ticket_counts(self) -> dict[str, int]:
        """Number of tickets in each status (for the mcp_desk_tickets gauge)."""
        rows = await self.r.run(lambda c: c.execute("SELECT status, count(*) FROM tickets GROUP BY status").fetchall())
        return {row[0]: row[1] for row in rows}

    async def ticket_ids(self, prefix: str, limit: int) -> list[str]:
        """Ticket ids starting with `prefix`, newest first (for completions)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = "SELECT id FROM tickets WHERE id LIKE ? ESCAPE '\\' ORDER BY updated_at DESC LIMIT ?"
        rows = await self.r.run(lambda c: c.execute(sql, (pattern, limit)).fetchall())
        return [row[0] for row in rows]

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
        offset = _offset(cursor, "doc-search", query)
        sql = (
            "SELECT path, title, snippet(docs_fts, 2, '[', ']', '…', 16) AS snip FROM docs_fts "
            "WHERE docs_fts MATCH ? ORDER BY rank LIMIT ? OFFSET ?"
        )
        params = (fts_query(query, any_word=any_word), limit + 1, offset)
        rows = await self.r.run(lambda c: c.execute(sql, params).fetchall())
        items = [DocSummary(id=r["path"], title=r["title"], snippet=r["snip"]) for r in rows[:limit]]
        return Page[DocSummary](items=items, next_cursor=_next_offset(rows, limit, offset, "doc-search", query))


# --- row helpers (run inside worker threads) ---------------------------------------------------


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(f"database schema {current} is newer than this server ({len(MIGRATIONS)}); upgrade it")
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        log.info("storage_migrated", schema_version=version)


def _idempotent(conn: sqlite3.Connection, scope: str, key: str | None, fingerprint: str) -> str | None:
    if key is None:
        return None
    row = conn.execute("SELECT fingerprint, object_id FROM idempotency WHERE scope = ? AND key = ?", (scope, key))
    found = row.fetchone()
    if found is None:
        return None
    if found["fingerprint"] != fingerprint:
        raise Conflict("idempotency_key was already used with different arguments; use a new key for a new object")
    return str(found["object_id"])


def _remember(conn: sqlite3.Connection, scope: str, key: str | None, fingerprint: str, object_id: str) -> None:
    if key is not None:
        conn.execute("INSERT INTO idempotency VALUES (?,?,?,?,?)", (scope, key, fingerprint, object_id, now()))


def _check_version(kind: str, object_id: str, current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise Conflict(
            f"{kind} {object_id} is at version {current}, not {expected}: it changed since you read it; "
            "fetch it again and retry with the new version"
        )


def _note_visibility(scope: NoteScope, alias: str) -> tuple[str, list[Any]]:
    if scope.all_owners:
        return "1 = 1", []
    return f"{alias}.owner = ?", [scope.owner]


def _note_row(conn: sqlite3.Connection, note_id: str, scope: NoteScope) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM notes WHERE id = ?", (note_id,)).fetchone()
    if row is None or not (scope.all_owners or row["owner"] == scope.owner):
        raise NotFound(f"note {note_id} not found; list_notes or search_notes shows the notes you can use")
    return row


def _ticket_row(conn: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise NotFound(f"ticket {ticket_id} not found; list_tickets or search_tickets shows existing tickets")
    return row


def _insert_comment(conn: sqlite3.Connection, ticket_seq: int, ticket_id: str, author: str, body: str) -> Comment:
    comment = Comment(id=new_id("cmt"), ticket_id=ticket_id, author=author, body=body, created_at=now())
    conn.execute(
        "INSERT INTO comments (id, ticket_seq, author, body, created_at) VALUES (?,?,?,?,?)",
        (comment.id, ticket_seq, author, body, comment.created_at),
    )
    return comment


def _reindex_ticket(conn: sqlite3.Connection, seq: int) -> None:
    row = conn.execute("SELECT title, description FROM tickets WHERE seq = ?", (seq,)).fetchone()
    comments = conn.execute("SELECT body FROM comments WHERE ticket_seq = ? ORDER BY seq LIMIT 500", (seq,)).fetchall()
    conn.execute("DELETE FROM tickets_fts WHERE rowid = ?", (seq,))
    conn.execute(
        "INSERT INTO tickets_fts (rowid, title, description, comments) VALUES (?,?,?,?)",
        (seq, row["title"], row["description"], "\n".join(c["body"] for c in comments)),
    )


def _note(row: sqlite3.Row) -> Note:
    return Note(
        id=row["id"],
        title=row["title"],
        body=row["body"],
        tags=json.loads(row["tags"]),
        owner=row["owner"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _note_summary(row: sqlite3.Row, snippet: str | None = None) -> NoteSummary:
    return NoteSummary(
        id=row["id"],
        title=row["title"],
        tags=json.loads(row["tags"]),
        version=row["version"],
        updated_at=row["updated_at"],
        snippet=snippet,
    )


def _ticket(conn: sqlite3.Connection, row: sqlite3.Row) -> Ticket:
    comments = conn.execute(
        "SELECT * FROM comments WHERE ticket_seq = ? ORDER BY seq LIMIT ?", (row["seq"], COMMENTS_SHOWN)
    ).fetchall()
    count = conn.execute("SELECT count(*) FROM comments WHERE ticket_seq = ?", (row["seq"],)).fetchone()[0]
    links = conn.execute("SELECT note_id FROM ticket_notes WHERE ticket_seq = ? ORDER BY created_at", (row["seq"],))
    return Ticket(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        status=row["status"],
        priority=row["priority"],
        assignee=row["assignee"],
        tags=json.loads(row["tags"]),
        created_by=row["created_by"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        comments=[
            Comment(id=c["id"], ticket_id=row["id"], author=c["author"], body=c["body"], created_at=c["created_at"])
            for c in comments
        ],
        comment_count=count,
        linked_notes=[link[0] for link in links.fetchall()],
    )


def _ticket_summary(row: sqlite3.Row, snippet: str | None = None) -> TicketSummary:
    return TicketSummary(
        id=row["id"],
        title=row["title"],
        status=row["status"],
        priority=row["priority"],
        assignee=row["assignee"],
        version=row["version"],
        updated_at=row["updated_at"],
        snippet=snippet,
    )


@dataclass(frozen=True, kw_only=True)
class _WindowedSearch:
    """Best-match-first search over a bounded window of the newest matches at a time.

    FTS5's `bm25` needs, for every query, the number of rows that contain each term, which it counts
    by reading the term's whole doclist: a common word over a million notes costs tens of milliseconds
    before any row is ranked, and `ORDER BY rank` then scores every match. Instead each page takes
    the newest SEARCH_WINDOW matches (found in rowid order, which reads only that far), scores them by
    where the words occur (title hits weigh more), and shows the best first; once a window is used up,
    the cursor moves on to the next older one.
    """

    table: str
    select: str
    join: str
    where: str
    args: tuple[Any, ...]
    kind: str
    scored: str  # SQL for the `title` and `text` columns the score reads

    def page(
        self, conn: sqlite3.Connection, expression: str, query: str, cursor: str | None, limit: int
    ) -> tuple[list[sqlite3.Row], str | None]:
        """One page of results and the cursor for the next (None after the oldest window)."""
        upper, offset = _window_cursor(cursor, self.kind, query)
        lower = self._lower_bound(conn, expression, upper)
        candidates = conn.execute(
            f"SELECT {self.table}.rowid AS rid, {self.scored} FROM {self.table} {self.join} "  # noqa: S608  # constants
            f"WHERE {self.table} MATCH ? AND {self.table}.rowid BETWEEN ? AND ? AND {self.where}",
            (expression, lower, upper, *self.args),
        ).fetchall()
        words = [w.lower() for w in _WORD.findall(query)]  # a prefix counts wherever it starts a longer word too
        ranked = sorted(candidates, key=lambda r: (-_score(words, r["title"], r["text"]), -r["rid"]))
        chosen = [r["rid"] for r in ranked[offset : offset + limit + 1]]
        rows = self._rows(conn, expression, chosen[:limit])
        digest = _fingerprint(query)[:12]
        if len(chosen) > limit:
            return rows, encode_cursor([self.kind, upper, offset + limit, digest])
        if lower > 0:  # older matches remain: the next page starts the next window
            return rows, encode_cursor([self.kind, lower - 1, 0, digest])
        return rows, None

    def _lower_bound(self, conn: sqlite3.Connection, expression: str, upper: int) -> int:
        boundary = conn.execute(
            f"SELECT rowid FROM {self.table} WHERE {self.table} MATCH ? AND rowid <= ? "  # noqa: S608  # constants
            "ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (expression, upper, SEARCH_WINDOW - 1),
        ).fetchone()
        return int(boundary[0]) if boundary is not None else 0

    def _rows(self, conn: sqlite3.Connection, expression: str, rowids: list[int]) -> list[sqlite3.Row]:
        # One lookup per row: FTS5 seeks on `rowid = ?` but would scan every match for `rowid IN (...)`.
        sql = (
            f"SELECT {self.select} FROM {self.table} {self.join} "  # noqa: S608  # constant clauses
            f"WHERE {self.table} MATCH ? AND {self.table}.rowid = ?"
        )
        return [row for rowid in rowids if (row := conn.execute(sql, (expression, rowid)).fetchone()) is not None]


def _score(words: list[str], title: str, text: str) -> int:
    """How strongly a row matches: occurrences of each word (or prefix), a title hit counting three times."""
    title, text = title.lower(), text.lower()
    return sum(3 * title.count(word) + text.count(word) for word in words)


def _window_cursor(cursor: str | None, kind: str, query: str) -> tuple[int, int]:
    """(highest rowid of the window, offset in it) from a search cursor; the first page starts at the newest."""
    decoded = decode_cursor(cursor, kind, 3)
    if decoded is None:
        return MAX_ROWID, 0
    upper, offset, digest = decoded
    if digest != _fingerprint(query)[:12]:
        raise InvalidInput("cursor belongs to a different query; omit it to start from the first page")
    if not (isinstance(upper, int) and isinstance(offset, int) and upper >= 0 and 0 <= offset <= SEARCH_WINDOW):
        raise InvalidInput("cursor is not valid for this listing; omit it to start from the first page")
    return upper, offset


def _offset(cursor: str | None, kind: str, query: str) -> int:
    decoded = decode_cursor(cursor, kind, 2)
    if decoded is None:
        return 0
    offset, digest = decoded
    if digest != _fingerprint(query)[:12] or not isinstance(offset, int) or offset < 0:
        raise InvalidInput("cursor belongs to a different query; omit it to start from the first page")
    return offset


def _next_offset(rows: Sequence[sqlite3.Row], limit: int, offset: int, kind: str, query: str) -> str | None:
    if len(rows) <= limit:
        return None
    return encode_cursor([kind, offset + limit, _fingerprint(query)[:12]])
