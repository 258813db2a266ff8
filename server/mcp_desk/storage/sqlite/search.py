"""Full-text search on SQLite: FTS5 expressions from parsed queries, and the windowed ranking.

FTS5's `bm25` needs, for every query, the number of rows that contain each term, which it counts by
reading the term's whole doclist: a common word over a million notes costs tens of milliseconds
before any row is ranked, and `ORDER BY rank` then scores every match. Notes and tickets are
therefore ranked a window of the newest matches at a time (`mcp_desk.storage.search`); the docs
index is small and bounded, so it keeps `ORDER BY rank`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from mcp_desk.domain.models import DocSummary
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.search import (
    SEARCH_WINDOW,
    next_offset_cursor,
    next_window_cursor,
    offset_cursor,
    parse_query,
    score,
    window_cursor,
    words,
)


def fts_query(text: str, *, any_word: bool = False) -> str:
    """Turn free text into a safe FTS5 expression: every word quoted, all required (or any).

    A word written with a trailing `*` (two characters or more) matches as a prefix. Prefixes are opt-in:
    a prefix of four or more characters makes FTS5 merge the doclists of every matching term up front.
    """
    quoted = [f'"{term.word}"*' if term.prefix else f'"{term.word}"' for term in parse_query(text)]
    return (" OR " if any_word else " ").join(quoted)


def owner_filter(expression: str, owner: str) -> str:
    """Restrict an FTS5 expression to one owner's rows (a superset; the SQL filter on the owner stays exact)."""
    owner_words = words(owner)
    if not owner_words:
        return expression
    return f'({expression}) AND owner : "{" ".join(owner_words)}"'


@dataclass(frozen=True, kw_only=True)
class WindowedSearch:
    """Best-match-first search over a bounded window of the newest matches at a time.

    Each page takes the newest `window` matches (found in rowid order, which reads only that far),
    scores them by where the words occur (title hits weigh more), and shows the best first; once a
    window is used up, the cursor moves on to the next older one.
    """

    table: str
    select: str
    join: str
    where: str
    args: tuple[Any, ...]
    kind: str
    scored: str  # SQL for the `title` and `text` columns the score reads
    window: int = SEARCH_WINDOW

    def page(
        self, conn: sqlite3.Connection, expression: str, query: str, cursor: str | None, limit: int
    ) -> tuple[list[sqlite3.Row], str | None]:
        """One page of results and the cursor for the next (None after the oldest window)."""
        upper, offset = window_cursor(cursor, self.kind, query, self.window)
        lower = self._lower_bound(conn, expression, upper)
        candidates = conn.execute(
            f"SELECT {self.table}.rowid AS rid, {self.scored} FROM {self.table} {self.join} "  # noqa: S608  # constants
            f"WHERE {self.table} MATCH ? AND {self.table}.rowid BETWEEN ? AND ? AND {self.where}",
            (expression, lower, upper, *self.args),
        ).fetchall()
        query_words = [w.lower() for w in words(query)]  # a prefix counts wherever it starts a longer word too
        ranked = sorted(candidates, key=lambda r: (-score(query_words, r["title"], r["text"]), -r["rid"]))
        chosen = [r["rid"] for r in ranked[offset : offset + limit + 1]]
        rows = self._rows(conn, expression, chosen[:limit])
        if len(chosen) > limit:
            return rows, next_window_cursor(self.kind, query, upper=upper, offset=offset + limit)
        if lower > 0:  # older matches remain: the next page starts the next window
            return rows, next_window_cursor(self.kind, query, upper=lower - 1, offset=0)
        return rows, None

    def _lower_bound(self, conn: sqlite3.Connection, expression: str, upper: int) -> int:
        boundary = conn.execute(
            f"SELECT rowid FROM {self.table} WHERE {self.table} MATCH ? AND rowid <= ? "  # noqa: S608  # constants
            "ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (expression, upper, self.window - 1),
        ).fetchone()
        return int(boundary[0]) if boundary is not None else 0

    def _rows(self, conn: sqlite3.Connection, expression: str, rowids: list[int]) -> list[sqlite3.Row]:
        # One lookup per row: FTS5 seeks on `rowid = ?` but would scan every match for `rowid IN (...)`.
        sql = (
            f"SELECT {self.select} FROM {self.table} {self.join} "  # noqa: S608  # constant clauses
            f"WHERE {self.table} MATCH ? AND {self.table}.rowid = ?"
        )
        return [row for rowid in rowids if (row := conn.execute(sql, (expression, rowid)).fetchone()) is not None]


def note_search(scope: NoteScope, *, window: int) -> WindowedSearch:
    """The windowed search over the notes `scope` may see."""
    args: tuple[Any, ...] = ()
    if scope.all_owners:
        where = "1 = 1"
    else:
        where, args = "n.owner = ?", (scope.owner,)
    return WindowedSearch(
        table="notes_fts",
        select="n.*, snippet(notes_fts, 1, '[', ']', '…', 16) AS snip",
        join="JOIN notes n ON n.seq = notes_fts.rowid",
        where=where,
        args=args,
        kind="note-search",
        scored="n.title AS title, substr(n.body, 1, 4096) || ' ' || n.tags AS text",
        window=window,
    )


def note_expression(scope: NoteScope, query: str) -> str:
    """The FTS5 expression of a notes query, narrowed to the owner's rows unless the scope reads all."""
    return fts_query(query) if scope.all_owners else owner_filter(fts_query(query), scope.owner)


def ticket_search(*, window: int) -> WindowedSearch:
    """The windowed search over tickets (title, description and comments)."""
    return WindowedSearch(
        table="tickets_fts",
        select="t.*, snippet(tickets_fts, -1, '[', ']', '…', 16) AS snip",
        join="JOIN tickets t ON t.seq = tickets_fts.rowid",
        where="1 = 1",
        args=(),
        kind="ticket-search",
        scored="t.title AS title, substr(t.description, 1, 4096) AS text",
        window=window,
    )


def docs_page(
    conn: sqlite3.Connection, query: str, *, cursor: str | None, limit: int, any_word: bool
) -> tuple[list[DocSummary], str | None]:
    """One page of the docs index, best match first (FTS5 rank), and the next page's cursor."""
    offset = offset_cursor(cursor, "doc-search", query)
    sql = (
        "SELECT path, title, snippet(docs_fts, 2, '[', ']', '…', 16) AS snip FROM docs_fts "
        "WHERE docs_fts MATCH ? ORDER BY rank LIMIT ? OFFSET ?"
    )
    rows = conn.execute(sql, (fts_query(query, any_word=any_word), limit + 1, offset)).fetchall()
    items = [DocSummary(id=r["path"], title=r["title"], snippet=r["snip"]) for r in rows[:limit]]
    nxt = next_offset_cursor(fetched=len(rows), limit=limit, offset=offset, kind="doc-search", query=query)
    return items, nxt
