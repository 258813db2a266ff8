"""The SQLite writer: group commit (a savepoint per transaction), concurrency, and clean write failures."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Literal

import anyio
import pytest

from mcp_desk import intents
from mcp_desk.domain.models import Note
from mcp_desk.errors import Conflict, StorageUnavailable
from mcp_desk.storage.sqlite import SqliteStorage
from mcp_desk.storage.sqlite.connection import READER_CACHE_KIB, READERS, WRITER_CACHE_KIB
from tests.groupcommit_support import flush_in_progress
from tests.storage.helpers import ALICE, note

pytestmark = pytest.mark.anyio


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
        # The writes queue up behind a running commit.
        async with anyio.create_task_group() as tg, flush_in_progress(store.w.commits):
            for n in range(3):
                tg.start_soon(create, n)
            tg.start_soon(stale_update)
            tg.start_soon(create, 3)
            await anyio.wait_all_tasks_blocked()
            assert store.w.commits.queued == 5
    assert isinstance(results.pop("stale"), Conflict)
    titles = sorted(n.title for n in results.values() if isinstance(n, Note))
    assert titles == [f"queued {n}" for n in range(4)]
    assert (await store.get_note(first.id, ALICE)).version == 1
    for n in range(4):
        created = results[f"note{n}"]
        assert isinstance(created, Note)
        assert (await store.get_note(created.id, ALICE)).title == f"queued {n}"


async def test_writes_of_one_batch_that_cannot_be_stored_are_each_refused_and_the_next_batch_succeeds(
    tmp_path: Path,
) -> None:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        await storage.w.run(lambda c: c.execute("PRAGMA max_page_count = 1"))
        errors: list[StorageUnavailable] = []

        async def big(n: int) -> None:
            try:
                await note(storage, title=f"big {n}", body="x" * 100_000)
            except StorageUnavailable as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg, flush_in_progress(storage.w.commits):
                for n in range(3):
                    tg.start_soon(big, n)
                await anyio.wait_all_tasks_blocked()
        assert len(errors) == 3
        await storage.w.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        assert (await note(storage, title="after")).title == "after"


async def test_closing_the_store_refuses_later_writes(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        writer = storage.w
    with pytest.raises(RuntimeError, match="not open"):
        await note(storage)
    with pytest.raises(RuntimeError, match="closed"):
        await writer.transaction(lambda c: None)


async def test_a_batch_whose_transaction_cannot_start_refuses_every_write_in_it_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        # A transaction left open on the writer makes the batch's BEGIN IMMEDIATE fail as a whole.
        await storage.w.run(lambda c: c.execute("BEGIN"))
        errors: list[StorageUnavailable] = []

        async def write(n: int) -> None:
            try:
                await note(storage, title=f"lost {n}")
            except StorageUnavailable as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg, flush_in_progress(storage.w.commits):
                for n in range(3):
                    tg.start_soon(write, n)
                await anyio.wait_all_tasks_blocked()
        assert len(errors) == 3
        assert all("nothing was saved" in exc.public for exc in errors)
        assert not await storage.w.run(lambda c: c.in_transaction)
        kept = await note(storage, title="after")
        assert [n.id for n in (await storage.list_notes(ALICE, tag=None, cursor=None, limit=10)).items] == [kept.id]


@pytest.mark.parametrize(("durability", "synchronous"), [("power", 2), ("process", 1)])
async def test_the_durability_level_sets_how_commits_reach_the_disk(
    tmp_path: Path, durability: Literal["power", "process"], synchronous: int
) -> None:
    """power: FULL (every commit fsynced); process: NORMAL in WAL (a commit survives a crash of the process)."""
    storage = SqliteStorage(tmp_path / "desk.db", durability=durability)
    async with storage.open():
        assert await storage.w.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == synchronous
        assert await storage.w.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


async def test_reads_run_side_by_side_on_the_reader_pool(tmp_path: Path) -> None:
    """Each read below waits for the other inside its worker thread: one reader connection would deadlock."""
    storage = SqliteStorage(tmp_path / "desk.db", readers=3)
    meeting = threading.Barrier(3, timeout=10)

    def meet(conn: sqlite3.Connection) -> int:
        meeting.wait()
        return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0])

    async with storage.open():
        await note(storage)
        counts: list[int] = []

        async def read() -> None:
            counts.append(await storage.r.run(meet))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(read)
        assert counts == [1, 1, 1]
        assert storage.r.busy == 0


async def test_a_read_waits_for_a_free_reader_when_all_are_busy(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "desk.db", readers=1)
    release = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        release.wait(10)

    async with storage.open():
        kept = await note(storage)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(storage.r.run, hold)
                await anyio.wait_all_tasks_blocked()
                assert storage.r.busy == 1
                tg.start_soon(storage.get_note, kept.id, ALICE)
                await anyio.wait_all_tasks_blocked()
                assert storage.r.busy == 1  # the second read queues for the one reader
                release.set()
        assert storage.r.busy == 0


async def test_page_caches_are_capped_per_connection(tmp_path: Path) -> None:
    """The cache is what each worker thread's malloc arena may copy: small, so threads x cache stays small."""
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        assert await storage.w.run(lambda c: c.execute("PRAGMA cache_size").fetchone()[0]) == -WRITER_CACHE_KIB
        assert await storage.r.run(lambda c: c.execute("PRAGMA cache_size").fetchone()[0]) == -READER_CACHE_KIB
        assert len(storage.r.connections) == READERS


async def test_a_write_carries_the_calling_task_s_intent_and_a_refused_write_does_not(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        carried, refused = intents.Intent("chain", 7, '{"tool":"create_note"}'), intents.Intent("chain", 8, "{}")
        token = intents.current.set(carried)
        try:
            created = await note(storage)
        finally:
            intents.current.reset(token)
        token = intents.current.set(refused)
        try:
            with pytest.raises(Conflict):
                await storage.update_note(
                    created.id, ALICE, title="x", body=None, tags=None, expected_version=created.version + 1
                )
        finally:
            intents.current.reset(token)
        await note(storage)  # outside a call: nothing to carry
        assert (carried.committed, refused.committed) == (True, False)
        assert await storage.journaled_intents("chain") == [(7, '{"tool":"create_note"}')]
        assert await storage.journaled_intents("another chain") == []
        await storage.forget_intents("chain", 6)
        assert await storage.journaled_intents("chain") == [(7, '{"tool":"create_note"}')]
        await storage.forget_intents("chain", 7)
        assert await storage.journaled_intents("chain") == []


async def test_a_call_whose_intent_rides_in_two_writes_keeps_one_journal_row(tmp_path: Path) -> None:
    """apply_macro retries on a concurrent change: the same call's intent reaches a second transaction."""
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        intent = intents.Intent("chain", 3, "{}")
        token = intents.current.set(intent)
        try:
            await note(storage)
            await note(storage)
        finally:
            intents.current.reset(token)
        assert await storage.journaled_intents("chain") == [(3, "{}")]
        await storage.forget_intents("chain", 3)
        await storage.forget_intents("chain", 3)  # nothing left to delete: found by a read, no write
        assert await storage.journaled_intents("chain") == []
