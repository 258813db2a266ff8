"""Full-text search on PostgreSQL: tsquery from parsed queries, the windowed ranking, the docs index.

Documents are indexed as `tsvector`s of the `simple` configuration (lower-cased words, no stemming:
the same words FTS5's unicode61 tokenizer sees) with GIN indexes. A query's words are ANDed (ORed for
`any_word`), `word*` becomes a prefix lexeme. Notes and tickets rank a bounded window of the newest
matches at a time with the shared scoring of `mcp_desk.storage.search`, exactly as on SQLite; the
docs index is small and bounded, so it ranks every match with `ts_rank`.
"""

from __future__ import annotations

from collections.abc import Sequence
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

# ts_headline options: matches in [brackets], one fragment of at most 16 words, like the SQLite snippets.
HEADLINE = "StartSel=[, StopSel=], MaxWords=16, MinWords=4, MaxFragments=1, FragmentDelimiter=…"
SNIPPET_SOURCE = 4096  # characters of a body the snippet and the score read


def ts_query(text: str, *, any_word: bool = False) -> str:
    """Free text as a safe `to_tsquery('simple', ...)` expression: every word quoted, all required (or any).

    Words are letters, digits and underscores only (`parse_query`), so quoting cannot be escaped.
    """
    quoted = [f"'{term.word.lower()}':*" if term.prefix else f"'{term.word.lower()}'" for term in parse_query(text)]
    return (" | " if any_word else " & ").join(quoted)


@dataclass(frozen=True, kw_only=True)
class WindowedSearch:
    """Best-match-first search over a bounded window of the newest matches at a time.

    Each page takes the newest `window` matches (an index scan on `seq`), scores them by where the
    words occur (title hits weigh more), and shows the best first; once a window is used up, the
    cursor moves on to the next older one.
    """

    table: str
    where: str  # extra condition on the table's columns; `$3`, `$4`... are `args`
    args: tuple[Any, ...]
    kind: str
    scored: str  # SQL for the `title` and `text` columns the score reads
    columns: str  # the row's columns, for the page
    snippet: str  # SQL of the text a snippet is cut from
    window: int = SEARCH_WINDOW

    async def page(self, conn: Any, query: str, cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
        """One page of result rows (with a `snip` column) and the cursor for the next (None after the oldest)."""
        upper, offset = window_cursor(cursor, self.kind, query, self.window)
        expression = ts_query(query)
        first = 3 + len(self.args)
        candidates = await conn.fetch(
            f"SELECT seq, {self.scored} FROM {self.table} "  # noqa: S608  # constant clauses; values are bound
            f"WHERE search @@ to_tsquery('simple', $1) AND seq <= $2 AND {self.where} "
            f"ORDER BY seq DESC LIMIT ${first}",
            expression,
            upper,
            *self.args,
            self.window + 1,
        )
        older = len(candidates) > self.window
        candidates = candidates[: self.window]
        query_words = [w.lower() for w in words(query)]  # a prefix counts wherever it starts a longer word too
        ranked = sorted(candidates, key=lambda r: (-score(query_words, r["title"], r["text"]), -r["seq"]))
        chosen = [r["seq"] for r in ranked[offset : offset + limit + 1]]
        rows = await self._rows(conn, expression, chosen[:limit])
        if len(chosen) > limit:
            return rows, next_window_cursor(self.kind, query, upper=upper, offset=offset + limit)
        if older:  # older matches remain: the next page starts the next window
            return rows, next_window_cursor(self.kind, query, upper=candidates[-1]["seq"] - 1, offset=0)
        return rows, None

    async def _rows(self, conn: Any, expression: str, seqs: Sequence[int]) -> list[Any]:
        if not seqs:
            return []
        found = await conn.fetch(
            f"SELECT {self.columns}, ts_headline('simple', {self.snippet}, to_tsquery('simple', $1), $2) AS snip "  # noqa: S608  # constants
            f"FROM {self.table} WHERE seq = ANY($3::bigint[])",
            expression,
            HEADLINE,
            list(seqs),
        )
        by_seq = {row["seq"]: row for row in found}
        return [by_seq[seq] for seq in seqs if seq in by_seq]


def note_search(scope: NoteScope, columns: str, *, window: int) -> WindowedSearch:
    """The windowed search over the notes `scope` may see."""
    where, args = ("true", ()) if scope.all_owners else ("owner = $3", (scope.owner,))
    return WindowedSearch(
        table="notes",
        where=where,
        args=args,
        kind="note-search",
        scored=f"title, left(body, {SNIPPET_SOURCE}) || ' ' || mcp_desk_words(tags) AS text",
        columns=columns,
        snippet=f"left(body, {SNIPPET_SOURCE})",
        window=window,
    )


def ticket_search(columns: str, *, window: int) -> WindowedSearch:
    """The windowed search over tickets (title, description and comments)."""
    return WindowedSearch(
        table="tickets",
        where="true",
        args=(),
        kind="ticket-search",
        scored=f"title, left(description, {SNIPPET_SOURCE}) AS text",
        columns=columns,
        snippet=(
            f"title || ' ' || left(description, {SNIPPET_SOURCE}) || ' ' || left(comments_text, {SNIPPET_SOURCE})"
        ),
        window=window,
    )


async def docs_page(
    conn: Any, query: str, *, cursor: str | None, limit: int, any_word: bool
) -> tuple[list[DocSummary], str | None]:
    """One page of the docs index, best match first (`ts_rank`), and the next page's cursor."""
    offset = offset_cursor(cursor, "doc-search", query)
    rows = await conn.fetch(
        "SELECT path, title, ts_headline('simple', left(content, $4), q, $5) AS snip FROM ("
        " SELECT path, title, content, q, ts_rank(search, q) AS rank FROM docs, to_tsquery('simple', $1) AS q"
        " WHERE search @@ q ORDER BY rank DESC, path LIMIT $2 OFFSET $3) AS page "
        "ORDER BY rank DESC, path",
        ts_query(query, any_word=any_word),
        limit + 1,
        offset,
        SNIPPET_SOURCE * 4,
        HEADLINE,
    )
    items = [DocSummary(id=r["path"], title=r["title"], snippet=r["snip"]) for r in rows[:limit]]
    nxt = next_offset_cursor(fetched=len(rows), limit=limit, offset=offset, kind="doc-search", query=query)
    return items, nxt
