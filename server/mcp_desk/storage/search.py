"""Search semantics every backend shares: how a query is read, how matches are scored, how pages resume.

A query is its words (letters and digits; everything else separates words and is never syntax).
Every word must match; a word written with a trailing `*` (two characters or more) matches as a
prefix. Prefixes are opt-in: a short prefix matches a great many terms. At most MAX_WORDS words count.

Ranked searches page through a bounded window of the newest matches at a time (SEARCH_WINDOW): each
window is scored (`score`) and shown best first, and the cursor then moves on to the next older
window, so a common word never makes one page rank every match in the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp_desk.errors import InvalidInput
from mcp_desk.storage.common import fingerprint
from mcp_desk.storage.cursor import decode_cursor, encode_cursor, invalid_cursor

MAX_WORDS = 32
SEARCH_WINDOW = 300  # newest matches ranked per page window
MAX_ROWID = 2**63 - 1
_WORD = re.compile(r"\w+", re.UNICODE)
_QUERY_WORD = re.compile(r"(\w+)(\*?)", re.UNICODE)
_OTHER_QUERY = "cursor belongs to a different query; omit it to start from the first page"


@dataclass(frozen=True, kw_only=True, slots=True)
class Term:
    """One word of a query; `prefix` when it was written `word*` and is long enough to be one."""

    word: str
    prefix: bool = False


def parse_query(text: str) -> tuple[Term, ...]:
    """The terms of a free-text query; InvalidInput when it has no searchable word."""
    words = _QUERY_WORD.findall(text)[:MAX_WORDS]
    if not words:
        raise InvalidInput("query has no searchable words; use letters or digits")
    return tuple(Term(word=word, prefix=bool(star) and len(word) >= 2) for word, star in words)


def words(text: str) -> list[str]:
    """The words of any text (an owner name, a query), as the search reads them."""
    return _WORD.findall(text)


def score(query_words: list[str], title: str, text: str) -> int:
    """How strongly a row matches: occurrences of each word (or prefix), a title hit counting three times.

    `query_words` are lower case; a prefix counts wherever it starts a longer word too.
    """
    title, text = title.lower(), text.lower()
    return sum(3 * title.count(word) + text.count(word) for word in query_words)


def query_digest(query: str) -> str:
    """Ties a search cursor to its query, so it cannot resume another search."""
    return fingerprint(query)[:12]


def window_cursor(cursor: str | None, kind: str, query: str, window: int) -> tuple[int, int]:
    """(highest row of the window, offset in it) from a search cursor; the first page starts at the newest."""
    decoded = decode_cursor(cursor, kind, 3)
    if decoded is None:
        return MAX_ROWID, 0
    upper, offset, digest = decoded
    if digest != query_digest(query):
        raise InvalidInput(_OTHER_QUERY)
    if not (isinstance(upper, int) and isinstance(offset, int) and upper >= 0 and 0 <= offset <= window):
        raise invalid_cursor()
    return upper, offset


def next_window_cursor(kind: str, query: str, *, upper: int, offset: int) -> str:
    """The cursor of the page at `offset` in the window ending at row `upper`."""
    return encode_cursor([kind, upper, offset, query_digest(query)])


def offset_cursor(cursor: str | None, kind: str, query: str) -> int:
    """The offset a plain ranked search resumes at (0 for the first page)."""
    decoded = decode_cursor(cursor, kind, 2)
    if decoded is None:
        return 0
    offset, digest = decoded
    if digest != query_digest(query) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(_OTHER_QUERY)
    return offset


def next_offset_cursor(*, fetched: int, limit: int, offset: int, kind: str, query: str) -> str | None:
    """The next page's cursor when `limit + 1` rows were asked for and `fetched` came back, else None."""
    if fetched <= limit:
        return None
    return encode_cursor([kind, offset + limit, query_digest(query)])
