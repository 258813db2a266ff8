"""PostgreSQL migrations: applied once, recorded, refused when newer, and safe when replicas start at once."""

from __future__ import annotations

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.postgres.migrations import MIGRATIONS
from tests.storage.helpers import fresh_database

pytestmark = pytest.mark.anyio
REPLICAS = 3
ROUNDS = 4


async def applied(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_migrations_are_applied_once_and_recorded() -> None:
    async with fresh_database() as url:
        for _ in range(2):
            async with PostgresStorage(url).open():
                pass
        assert await applied(url) == list(range(1, len(MIGRATIONS) + 1))


async def test_replicas_opened_concurrently_race_on_the_advisory_lock_and_migrate_once() -> None:
    for _ in range(ROUNDS):
        async with fresh_database() as url:
            stores = [PostgresStorage(url) for _ in range(REPLICAS)]
            for store in stores:
                await store.db.open()
            try:
                with capture_logs() as logs:
                    async with anyio.create_task_group() as tg:
                        for store in stores:
                            tg.start_soon(store.migrate)
            finally:
                for store in stores:
                    await store.db.close()
            assert await applied(url) == list(range(1, len(MIGRATIONS) + 1))
            assert [e["schema_version"] for e in logs if e["event"] == "storage_migrated"] == list(
                range(1, len(MIGRATIONS) + 1)
            )


async def test_a_newer_schema_than_the_server_knows_refuses_to_start() -> None:
    async with fresh_database() as url:
        async with PostgresStorage(url).open():
            pass
        conn = await asyncpg.connect(url)
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", len(MIGRATIONS) + 1)
        await conn.close()
        with pytest.raises(RuntimeError, match="newer than this server"):
            async with PostgresStorage(url).open():
                pass


async def test_tickets_of_a_version_1_database_gain_a_created_entry_and_their_clock_facts() -> None:
    async with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(MIGRATIONS[0])
            await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz)")
            await conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, now())")
            for status, updated in (
                ("waiting", "2026-01-02T00:00:00.000000Z"),
                ("closed", "2026-01-03T00:00:00.000000Z"),
            ):
                await conn.execute(
                    "INSERT INTO tickets (id, title, description, status, priority, created_by, created_at, updated_at)"
                    " VALUES ($1, 't', 'd', $2, 'normal', 'alice', '2026-01-01T00:00:00.000000Z', $3)",
                    f"tkt_{status}",
                    status,
                    updated,
                )
        finally:
            await conn.close()
        storage = PostgresStorage(url)
        async with storage.open():
            waiting, closed = await storage.get_ticket("tkt_waiting"), await storage.get_ticket("tkt_closed")
            history = await storage.ticket_history("tkt_waiting", cursor=None, limit=5)
            await storage.delete_ticket("tkt_closed")
            left = await storage.db.read(lambda c: c.fetchval("SELECT count(*) FROM ticket_history"))
    assert (waiting.requester, waiting.clock.waiting_since) == (None, "2026-01-02T00:00:00.000000Z")
    assert closed.clock.resolved_at == "2026-01-03T00:00:00.000000Z"
    [entry] = history.items
    assert (entry.kind, entry.actor, entry.detail) == ("created", "alice", {"migrated": True})
    assert left == 1  # the deleted ticket's history went with it
