"""Full-text search on every backend: ownership, paging, query syntax as words, the windowed ranking, the docs index."""

from __future__ import annotations

import pytest

from mcp_desk.domain.models import Doc
from mcp_desk.errors import InvalidInput, NotFound
from mcp_desk.storage.base import Storage
from tests.storage.conftest import MakeStore
from tests.storage.helpers import ADMIN, ALICE, note, ticket

pytestmark = pytest.mark.anyio


async def test_search_pages_and_respects_ownership(store: Storage) -> None:
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
async def test_search_syntax_in_queries_is_treated_as_words(store: Storage, query: str) -> None:
    await store.search_notes(ALICE, query, cursor=None, limit=5)


async def test_ticket_search_covers_comments_and_deletion_removes_it(store: Storage) -> None:
    created = await ticket(store, title="mail delay")
    await store.add_comment(created.id, author="bob", body="mx record flapping")
    assert [t.id for t in (await store.search_tickets("flapping", cursor=None, limit=5)).items] == [created.id]
    await store.delete_ticket(created.id)
    assert (await store.search_tickets("flapping", cursor=None, limit=5)).items == []
    with pytest.raises(NotFound):
        await store.get_ticket(created.id)


async def test_search_pages_through_every_match_window_by_window(make_store: MakeStore) -> None:
    store = await make_store(search_window=3)
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


async def test_ticket_search_pages_through_every_match_window_by_window(make_store: MakeStore) -> None:
    store = await make_store(search_window=2)
    made = {(await ticket(store, title=f"printer jam {i}")).id for i in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.search_tickets("printer", cursor=cursor, limit=1)
        seen += [item.id for item in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert sorted(seen) == sorted(made)


async def test_a_search_window_ranks_the_best_of_the_newest_matches(make_store: MakeStore) -> None:
    store = await make_store(search_window=2)
    await note(store, title="printer", body="printer printer printer jam")
    await note(store, title="old", body="printer")
    best = await note(store, title="printer toner printer", body="printer printer")
    await note(store, title="new", body="printer")
    page = await store.search_notes(ALICE, "printer", cursor=None, limit=1)
    assert [item.id for item in page.items] == [best.id]


async def test_docs_index_is_replaced_and_searchable(store: Storage) -> None:
    await store.index_docs([Doc(id="a.md", title="Disk full", content="free space on /var", bytes=10)])
    await store.index_docs([Doc(id="b.md", title="VPN", content="tunnel", bytes=6)])
    assert (await store.search_docs("disk", cursor=None, limit=5)).items == []
    assert [d.id for d in (await store.search_docs("tunnel", cursor=None, limit=5)).items] == ["b.md"]


async def test_docs_search_pages_by_rank_and_any_word_widens_it(store: Storage) -> None:
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


async def test_punctuation_separates_words_in_addresses_paths_and_versions(store: Storage) -> None:
    made = await note(store, body="mail alice@example.com, see /var/log/syslog after v1.2.3 of foo_bar")
    for query in ("example", "syslog", "alice example", "foo_bar", "v1", "exam*"):
        assert [n.id for n in (await store.search_notes(ALICE, query, cursor=None, limit=5)).items] == [made.id], query
    assert (await store.search_notes(ALICE, "examples", cursor=None, limit=5)).items == []
