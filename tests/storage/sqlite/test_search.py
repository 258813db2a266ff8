"""SQLite full-text search: FTS5 rendering, ownership, paging, the windowed ranking, the docs index."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_desk.domain.models import Doc
from mcp_desk.errors import InvalidInput, NotFound
from mcp_desk.storage.sqlite import SqliteStorage
from mcp_desk.storage.sqlite.search import fts_query, owner_filter
from tests.storage.sqlite.helpers import ADMIN, ALICE, note, ticket

pytestmark = pytest.mark.anyio


async def test_search_pages_and_respects_ownership(store: SqliteStorage) -> None:
    for i in range(5):
        await note(store, title=f"vpn issue {i}", body="tunnel drops")
    await note(store, owner="bob", title="vpn bob", body="tunnel")
    first = await store.search_notes(ALICE, "tunnel", cursor=None, limit=3)
    second = await store.search_notes(ALICE, "tunnel", cursor=first.next_cursor, limit=3)
    assert len(first.items) == 3 and len(second.items) == 2 and second.next_cursor is None
    assert all("bob" not in item.title for item in first.items + second.items)
    assert first.items[0].snippet is not None and "[tunnel]" in first.items[0].snippet
    assert len((await store.search_notes(ADMIN, "tunnel", cursor=None, limit=10)).items) == 6


@pytest.mark.parametrize("query", ['say "hi', "AND OR NOT", "title:x", "a*b(", "NEAR(a b)", "^x", "' OR 1=1 --"])
async def test_search_syntax_in_queries_is_treated_as_words(store: SqliteStorage, query: str) -> None:
    await store.search_notes(ALICE, query, cursor=None, limit=5)


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


async def test_ticket_search_covers_comments_and_deletion_removes_it(store: SqliteStorage) -> None:
    created = await ticket(store, title="mail delay")
    await store.add_comment(created.id, author="bob", body="mx record flapping")
    assert [t.id for t in (await store.search_tickets("flapping", cursor=None, limit=5)).items] == [created.id]
    await store.delete_ticket(created.id)
    assert (await store.search_tickets("flapping", cursor=None, limit=5)).items == []
    with pytest.raises(NotFound):
        await store.get_ticket(created.id)


async def test_search_pages_through_every_match_window_by_window(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "desk.db", search_window=3)
    async with store.open():
        mine = {(await note(store, title=f"disk alert {i}")).id for i in range(10)}
        for i in range(10):
            await note(store, owner="bob", title=f"disk alert bob {i}")
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            page = await store.search_notes(ALICE, "disk", cursor=cursor, limit=2)
            seen += [item.id for item in page.items]
            if (cursor := page.next_cursor) is None:
                break
    assert sorted(seen) == sorted(mine)
    assert len(seen) == len(mine)


async def test_ticket_search_pages_through_every_match_window_by_window(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "desk.db", search_window=2)
    async with store.open():
        made = {(await ticket(store, title=f"printer jam {i}")).id for i in range(5)}
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await store.search_tickets("printer", cursor=cursor, limit=1)
            seen += [item.id for item in page.items]
            if (cursor := page.next_cursor) is None:
                break
    assert sorted(seen) == sorted(made)


async def test_a_search_window_ranks_the_best_of_the_newest_matches(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "desk.db", search_window=2)
    async with store.open():
        await note(store, title="printer", body="printer printer printer jam")
        await note(store, title="old", body="printer")
        best = await note(store, title="printer toner printer", body="printer printer")
        await note(store, title="new", body="printer")
        page = await store.search_notes(ALICE, "printer", cursor=None, limit=1)
    assert [item.id for item in page.items] == [best.id]


async def test_docs_index_is_replaced_and_searchable(store: SqliteStorage) -> None:
    await store.index_docs([Doc(id="a.md", title="Disk full", content="free space on /var", bytes=10)])
    await store.index_docs([Doc(id="b.md", title="VPN", content="tunnel", bytes=6)])
    assert (await store.search_docs("disk", cursor=None, limit=5)).items == []
    assert [d.id for d in (await store.search_docs("tunnel", cursor=None, limit=5)).items] == ["b.md"]


async def test_docs_search_pages_by_rank_and_any_word_widens_it(store: SqliteStorage) -> None:
    docs = [Doc(id=f"{i}.md", title=f"Runbook {i}", content=f"vpn tunnel step {i}", bytes=10) for i in range(3)]
    await store.index_docs([*docs, Doc(id="x.md", title="Disk", content="disk full", bytes=9)])
    first = await store.search_docs("tunnel", cursor=None, limit=2)
    second = await store.search_docs("tunnel", cursor=first.next_cursor, limit=2)
    assert len(first.items) == 2 and [d.id for d in second.items] not in ([], [d.id for d in first.items])
    assert second.next_cursor is None
    with pytest.raises(InvalidInput, match="different query"):
        await store.search_docs("vpn", cursor=first.next_cursor, limit=2)
    assert (await store.search_docs("tunnel disk", cursor=None, limit=5)).items == []
    assert len((await store.search_docs("tunnel disk", cursor=None, limit=5, any_word=True)).items) == 4
