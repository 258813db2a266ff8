"""SQLite storage: migrations, versions, idempotency, pagination, full-text search, failures."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from mcp_desk.domain.models import Doc, Note, Ticket
from mcp_desk.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from mcp_desk.storage.base import NoteScope, TicketChanges
from mcp_desk.storage.migrations import MIGRATIONS
from mcp_desk.storage.sqlite import SqliteStorage, decode_cursor, encode_cursor, fts_query

pytestmark = pytest.mark.anyio
ALICE = NoteScope(owner="alice")
BOB = NoteScope(owner="bob")
ADMIN = NoteScope(owner="root", all_owners=True)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        yield storage


async def note(
    store: SqliteStorage, owner: str = "alice", title: str = "t", body: str = "b", key: str | None = None
) -> Note:
    return await store.create_note(owner=owner, title=title, body=body, tags=["x"], idempotency_key=key)


async def ticket(store: SqliteStorage, title: str = "printer jam", key: str | None = None) -> Ticket:
    return await store.create_ticket(
        created_by="alice", title=title, description="d", priority="normal", tags=[], idempotency_key=key
    )


async def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    for _ in range(2):
        async with SqliteStorage(path).open():
            pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_than_the_server_knows_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this server"):
        async with SqliteStorage(path).open():
            pass


async def test_notes_are_invisible_to_other_owners_but_not_to_read_all(store: SqliteStorage) -> None:
    created = await note(store)
    assert (await store.get_note(created.id, ALICE)).title == "t"
    assert (await store.get_note(created.id, ADMIN)).owner == "alice"
    with pytest.raises(NotFound) as foreign:
        await store.get_note(created.id, BOB)
    with pytest.raises(NotFound) as missing:
        await store.get_note("note_0000000000000000", BOB)
    assert foreign.value.public.replace(created.id, "X") == missing.value.public.replace("note_0000000000000000", "X")


async def test_a_stale_expected_version_is_a_conflict_and_changes_nothing(store: SqliteStorage) -> None:
    created = await note(store)
    updated = await store.update_note(created.id, ALICE, title="new", body=None, tags=None, expected_version=1)
    assert (updated.version, updated.title, updated.body) == (2, "new", "b")
    with pytest.raises(Conflict, match="version 2, not 1"):
        await store.update_note(created.id, ALICE, title="lost", body=None, tags=None, expected_version=1)
    assert (await store.get_note(created.id, ALICE)).title == "new"


async def test_an_idempotency_key_returns_the_first_object_and_refuses_other_arguments(store: SqliteStorage) -> None:
    first = await note(store, key="k1")
    again = await note(store, key="k1")
    assert again.id == first.id
    with pytest.raises(Conflict, match="different arguments"):
        await note(store, key="k1", title="other")
    other_owner = await note(store, owner="bob", key="k1")
    assert other_owner.id != first.id
    assert (await ticket(store, key="k1")).id == (await ticket(store, key="k1")).id


async def test_lists_page_through_every_item_exactly_once(store: SqliteStorage) -> None:
    ids = {(await note(store, title=f"n{i}")).id for i in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_notes(ALICE, tag=None, cursor=cursor, limit=3)
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7


async def test_a_forged_or_foreign_cursor_is_refused(store: SqliteStorage) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_notes(ALICE, tag=None, cursor="garbage!!", limit=3)
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_tickets(
            status=None, priority=None, assignee=None, cursor=encode_cursor(["notes", "a", 1]), limit=3
        )
    for i in range(3):
        await note(store, title=f"alpha {i}")
    page = await store.search_notes(ALICE, "alpha", cursor=None, limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidInput, match="different query"):
        await store.search_notes(ALICE, "beta", cursor=page.next_cursor, limit=1)
    assert decode_cursor(None, "notes", 2) is None


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


async def test_ticket_search_covers_comments_and_deletion_removes_it(store: SqliteStorage) -> None:
    created = await ticket(store, title="mail delay")
    await store.add_comment(created.id, author="bob", body="mx record flapping")
    assert [t.id for t in (await store.search_tickets("flapping", cursor=None, limit=5)).items] == [created.id]
    await store.delete_ticket(created.id)
    assert (await store.search_tickets("flapping", cursor=None, limit=5)).items == []
    with pytest.raises(NotFound):
        await store.get_ticket(created.id)


async def test_a_refused_transition_rolls_back_the_comment_that_came_with_it(store: SqliteStorage) -> None:
    created = await ticket(store)
    await store.update_ticket(created.id, TicketChanges(status="closed"), expected_version=None)
    with pytest.raises(Conflict, match="allowed next: open"):
        await store.update_ticket(
            created.id, TicketChanges(status="waiting"), expected_version=None, comment_by="a", comment="lost?"
        )
    after = await store.get_ticket(created.id)
    assert (after.status, after.comment_count) == ("closed", 0)


async def test_get_ticket_caps_comments_oldest_first_with_the_total(store: SqliteStorage) -> None:
    created = await ticket(store)
    for i in range(55):
        await store.add_comment(created.id, author="a", body=f"c{i}")
    got = await store.get_ticket(created.id)
    assert got.comment_count == 55
    assert [c.body for c in got.comments[:2]] == ["c0", "c1"]
    assert len(got.comments) == 50


async def test_deleting_a_note_removes_its_links(store: SqliteStorage) -> None:
    created, linked = await ticket(store), await note(store)
    after_link = await store.link_note(created.id, linked.id, ALICE)
    assert after_link.linked_notes == [linked.id]
    with pytest.raises(NotFound):
        await store.link_note(created.id, linked.id, BOB)
    await store.delete_note(linked.id, ALICE)
    assert (await store.get_ticket(created.id)).linked_notes == []


async def test_ticket_counts_and_id_completion(store: SqliteStorage) -> None:
    created = await ticket(store)
    await ticket(store)
    assert await store.ticket_counts() == {"open": 2}
    assert await store.ticket_ids(created.id[:10], 10)
    assert await store.ticket_ids("%", 10) == []


async def test_docs_index_is_replaced_and_searchable(store: SqliteStorage) -> None:
    await store.index_docs([Doc(id="a.md", title="Disk full", content="free space on /var", bytes=10)])
    await store.index_docs([Doc(id="b.md", title="VPN", content="tunnel", bytes=6)])
    assert (await store.search_docs("disk", cursor=None, limit=5)).items == []
    assert [d.id for d in (await store.search_docs("tunnel", cursor=None, limit=5)).items] == ["b.md"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_a_read_only_database_answers_reads_and_refuses_writes_cleanly(tmp_path: Path) -> None:
    await _read_only_case(tmp_path)


async def test_a_write_that_cannot_be_stored_is_a_clean_error_and_reads_keep_working(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        kept = await note(storage)
        # Simulate a full disk: SQLite refuses to grow the file past max_page_count.
        await storage.w.run(lambda c: c.execute("PRAGMA max_page_count = 1"))
        with pytest.raises(StorageUnavailable, match="nothing was saved"):
            await note(storage, body="x" * 100_000)
        assert (await storage.get_note(kept.id, ALICE)).title == "t"
        await storage.w.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        await note(storage, body="x" * 100_000)


async def _read_only_case(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    storage = SqliteStorage(path)
    async with storage.open():
        kept = await note(storage)
        os.chmod(path, stat.S_IRUSR)
        with pytest.raises(StorageUnavailable):
            await note(storage)
        assert (await storage.get_note(kept.id, ALICE)).id == kept.id


async def test_the_health_probe_writes_and_reads(store: SqliteStorage) -> None:
    await store.probe()


async def test_concurrent_writers_all_succeed(store: SqliteStorage) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(note, store, "alice", f"n{i}")
    assert len((await store.list_notes(ALICE, tag=None, cursor=None, limit=100)).items) == 20


async def test_writes_queued_behind_a_commit_share_one_transaction_and_fail_alone(store: SqliteStorage) -> None:
    first = await note(store)
    results: dict[str, object] = {}

    async def create(n: int) -> None:
        results[f"note{n}"] = await note(store, title=f"queued {n}")

    async def stale_update() -> None:
        try:
            await store.update_note(first.id, ALICE, title="x", body=None, tags=None, expected_version=99)
        except Conflict as exc:
            results["stale"] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await store.w._commit_lock.acquire()  # as if a commit were running: the writes queue up behind it
            for n in range(3):
                tg.start_soon(create, n)
            tg.start_soon(stale_update)
            tg.start_soon(create, 3)
            await anyio.wait_all_tasks_blocked()
            assert len(store.w._queue) == 5
            store.w._commit_lock.release()
    assert isinstance(results.pop("stale"), Conflict)
    titles = sorted(n.title for n in results.values() if isinstance(n, Note))
    assert titles == [f"queued {n}" for n in range(4)]
    assert (await store.get_note(first.id, ALICE)).version == 1
    for n in range(4):
        created = results[f"note{n}"]
        assert isinstance(created, Note)
        assert (await store.get_note(created.id, ALICE)).title == f"queued {n}"


async def test_search_pages_through_every_match_window_by_window(
    store: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcp_desk.storage.sqlite.SEARCH_WINDOW", 3)
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


async def test_a_search_window_ranks_the_best_of_the_newest_matches(
    store: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcp_desk.storage.sqlite.SEARCH_WINDOW", 2)
    await note(store, title="printer", body="printer printer printer jam")
    await note(store, title="old", body="printer")
    best = await note(store, title="printer toner printer", body="printer printer")
    await note(store, title="new", body="printer")
    page = await store.search_notes(ALICE, "printer", cursor=None, limit=1)
    assert [item.id for item in page.items] == [best.id]


async def test_a_version_1_database_is_migrated_and_its_notes_are_searchable(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
        ("note_1", "alice", "legacy", "written before the upgrade", "[]", "t", "t"),
    )
    conn.commit()
    conn.close()
    storage = SqliteStorage(path)
    async with storage.open():
        found = await storage.search_notes(ALICE, "upgrade", cursor=None, limit=5)
    assert [item.id for item in found.items] == ["note_1"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
