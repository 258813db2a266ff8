"""Backend-neutral search: query words, opt-in prefixes, the word limit, scoring and search cursors."""

from __future__ import annotations

import pytest

from mcp_desk.errors import InvalidInput
from mcp_desk.storage.cursor import encode_cursor
from mcp_desk.storage.search import (
    MAX_ROWID,
    MAX_WORDS,
    Term,
    next_offset_cursor,
    next_window_cursor,
    offset_cursor,
    parse_query,
    query_digest,
    score,
    window_cursor,
    words,
)


def test_every_word_counts_and_syntax_is_only_a_separator() -> None:
    assert parse_query('say "hi" AND title:x') == (
        Term(word="say"),
        Term(word="hi"),
        Term(word="AND"),
        Term(word="title"),
        Term(word="x"),
    )


def test_a_trailing_star_is_an_opt_in_prefix_of_two_characters_or_more() -> None:
    assert parse_query("disk ful*") == (Term(word="disk"), Term(word="ful", prefix=True))
    assert parse_query("a* b") == (Term(word="a"), Term(word="b"))


def test_a_query_without_words_is_refused_and_long_queries_are_capped() -> None:
    with pytest.raises(InvalidInput, match="no searchable words"):
        parse_query("!!! ???")
    assert len(parse_query(" ".join(f"w{i}" for i in range(MAX_WORDS + 10)))) == MAX_WORDS


def test_words_are_unicode_aware() -> None:
    assert words("café-crème 42") == ["café", "crème", "42"]


def test_title_hits_weigh_three_times_and_prefixes_count_inside_longer_words() -> None:
    assert score(["printer"], "Printer", "printer printer") == 5
    assert score(["print"], "printers", "reprint") == 4
    assert score(["disk"], "vpn", "tunnel") == 0


def test_a_window_cursor_resumes_its_query_only() -> None:
    assert window_cursor(None, "note-search", "disk", 300) == (MAX_ROWID, 0)
    cursor = next_window_cursor("note-search", "disk", upper=99, offset=10)
    assert window_cursor(cursor, "note-search", "disk", 300) == (99, 10)
    with pytest.raises(InvalidInput, match="different query"):
        window_cursor(cursor, "note-search", "vpn", 300)


@pytest.mark.parametrize(("upper", "offset"), [(-1, 0), (5, -1), (5, 301), ("5", 0), (5, 1.5)])
def test_a_window_cursor_with_values_out_of_range_is_refused(upper: object, offset: object) -> None:
    forged = encode_cursor(["note-search", upper, offset, query_digest("disk")])
    with pytest.raises(InvalidInput, match="not valid for this listing"):
        window_cursor(forged, "note-search", "disk", 300)


def test_an_offset_cursor_pages_on_only_when_more_rows_came_back() -> None:
    assert offset_cursor(None, "doc-search", "disk") == 0
    assert next_offset_cursor(fetched=3, limit=3, offset=0, kind="doc-search", query="disk") is None
    cursor = next_offset_cursor(fetched=4, limit=3, offset=6, kind="doc-search", query="disk")
    assert cursor is not None
    assert offset_cursor(cursor, "doc-search", "disk") == 9
    with pytest.raises(InvalidInput, match="different query"):
        offset_cursor(cursor, "doc-search", "vpn")
    with pytest.raises(InvalidInput, match="different query"):
        offset_cursor(encode_cursor(["doc-search", -1, query_digest("disk")]), "doc-search", "disk")
