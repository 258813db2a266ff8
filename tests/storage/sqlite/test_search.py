"""SQLite's FTS5 rendering of queries: quoted words, opt-in prefixes, OR for any word, the owner filter."""

from __future__ import annotations

import pytest

from mcp_desk.errors import InvalidInput
from mcp_desk.storage.sqlite.search import fts_query, owner_filter


def test_a_query_without_words_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no searchable words"):
        fts_query("!!! ???")
    assert fts_query("disk full") == '"disk" "full"'
    assert fts_query("disk ful*") == '"disk" "ful"*'
    assert fts_query("a* b") == '"a" "b"'


def test_any_word_joins_the_words_with_or_and_the_owner_filter_narrows_by_owner_words() -> None:
    assert fts_query("disk full", any_word=True) == '"disk" OR "full"'
    assert owner_filter('"disk"', "alice@example.com") == '("disk") AND owner : "alice example com"'
    assert owner_filter('"disk"', "@@") == '"disk"'
