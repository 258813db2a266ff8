"""PostgreSQL faults: a lost database gives retryable errors and service resumes by itself; nothing leaks.

The database is taken away the way a restart does it (every connection terminated, new ones refused)
but only this test's database, so other runs on the same server are untouched.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from mcp_desk.errors import StorageUnavailable
from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.postgres.connection import PoolConfig
from tests.storage.helpers import ALICE, SERVER_URL, fresh_database, note

pytestmark = pytest.mark.anyio
PASSWORD = "pw-s3cret-9d1c"  # trust authentication ignores it; it must never show up anywhere


def with_password(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f"//{parts.username}@", f"//{parts.username}:{PASSWORD}@", 1)


async def admin(sql: str, *args: object) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def end_connections(url: str) -> None:
    """What a restart does to the connections of a pool: every one of them is terminated."""
    name = urlsplit(url).path.lstrip("/")
    await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)


@asynccontextmanager
async def database_down(url: str) -> AsyncIterator[None]:
    """Refuse new connections to the database and end every open one; allow them again on exit."""
    name = urlsplit(url).path.lstrip("/")
    await admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    await end_connections(url)
    try:
        yield
    finally:
        await admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def leaked(text: str) -> bool:
    return PASSWORD in text or "postgres@" in text or "postgres:" in text


async def test_a_lost_database_refuses_calls_with_retryable_errors_and_service_resumes_by_itself() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(with_password(url))
        async with store.open():
            kept = await note(store, title="before")
            with capture_logs() as logs:
                async with database_down(url):
                    with pytest.raises(StorageUnavailable, match=r"nothing was saved.*try the call again") as write:
                        await note(store, title="during")
                    with pytest.raises(StorageUnavailable, match=r"cannot be reached.*try the call again") as read:
                        await store.get_note(kept.id, ALICE)
                    with pytest.raises(StorageUnavailable):
                        await store.probe()
            assert (await store.get_note(kept.id, ALICE)).title == "before"
            after = await note(store, title="after")
            titles = {n.title for n in (await store.list_notes(ALICE, tag=None, cursor=None, limit=10)).items}
            assert titles == {"before", "after"} and after.version == 1
            await store.probe()
    for error in (write.value, read.value):
        assert error.__cause__ is None and error.__suppress_context__
        assert not leaked(str(error)) and not leaked(repr(error.context))
    assert not leaked(repr(logs))


async def test_connections_ended_by_a_restart_are_replaced_without_an_error() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url, pool=PoolConfig(min_size=3, max_size=3))
        async with store.open():
            kept = await note(store)
            await end_connections(url)
            assert (await store.get_note(kept.id, ALICE)).id == kept.id
            assert (await note(store, title="written after")).title == "written after"


async def test_a_statement_over_its_timeout_is_cancelled_and_saves_nothing() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url, pool=PoolConfig(statement_timeout_ms=200))
        async with store.open():
            kept = await note(store)
            blocker = await asyncpg.connect(url)
            try:
                async with blocker.transaction():
                    await blocker.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", kept.id)
                    with pytest.raises(StorageUnavailable, match=r"took too long.*nothing was saved"):
                        await store.update_note(kept.id, ALICE, title="late", body=None, tags=None, expected_version=1)
            finally:
                await blocker.close()
            assert (await store.get_note(kept.id, ALICE)).version == 1


async def test_an_exhausted_pool_is_a_retryable_busy_error_and_the_gauge_shows_it() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url, pool=PoolConfig(min_size=1, max_size=1, acquire_timeout_s=0.2))
        async with store.open():
            assert store.pool_state() == {"idle": 1, "in_use": 0, "max": 1}
            async with store.db.connection():
                assert store.pool_state() == {"idle": 0, "in_use": 1, "max": 1}
                with pytest.raises(StorageUnavailable, match="busy"):
                    await store.get_note("note_0000000000000000", ALICE)
            assert store.pool_state()["in_use"] == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_database_at_start_names_host_and_port_but_never_the_password() -> None:
    url = f"postgresql://desk:{PASSWORD}@127.0.0.1:{closed_port()}/desk"
    with capture_logs() as logs, pytest.raises(RuntimeError) as refused:
        async with PostgresStorage(url, pool=PoolConfig(connect_timeout_s=2)).open():
            pass
    message = str(refused.value)
    assert f"postgresql://127.0.0.1:{urlsplit(url).port}/desk" in message
    assert PASSWORD not in message and "desk@" not in message
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert PASSWORD not in repr(logs)


async def test_a_write_interrupted_by_a_lost_connection_is_retried_once_on_a_fresh_one() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url, pool=PoolConfig(min_size=2, max_size=2))
        async with store.open():
            made: list[str] = []
            async with anyio.create_task_group() as tg:

                async def writer(i: int) -> None:
                    made.append((await note(store, title=f"w{i}", key=f"k{i}")).id)

                await end_connections(url)
                for i in range(6):
                    tg.start_soon(writer, i)
            assert len(set(made)) == 6


async def test_a_deadlocked_transaction_is_run_again_and_then_succeeds() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url)
        async with store.open():
            first, second = await note(store, title="first"), await note(store, title="second")
            other = await asyncpg.connect(url)
            try:
                await other.execute("SET deadlock_timeout = '60s'")  # so the deadlock is found on our side
                await other.execute("BEGIN")
                await other.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", second.id)
                ours_holds_first = anyio.Event()
                attempts = 0

                async def tx(conn: Any) -> str:
                    nonlocal attempts
                    attempts += 1
                    await conn.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", first.id)
                    ours_holds_first.set()
                    await conn.execute(
                        "UPDATE notes SET title = 'both' WHERE id = ANY($1::text[])", [first.id, second.id]
                    )
                    return "done"

                async def theirs() -> None:
                    await ours_holds_first.wait()
                    await other.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", first.id)
                    await other.execute("COMMIT")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(theirs)
                    assert await store.db.transaction(tx) == "done"
            finally:
                await other.close()
            assert attempts == 2
            assert {(await store.get_note(n.id, ALICE)).title for n in (first, second)} == {"both"}
