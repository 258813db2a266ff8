"""Which PostgreSQL driver: psycopg 3 (+ psycopg-pool) or asyncpg, measured on mcp-desk's own statements.

Both drivers run the exact SQL of the PostgreSQL repository's `create_note` (one transaction:
reserve the idempotency key, insert the note, return the row) and `list_notes` (one indexed page of
21 rows) against the same schema, through a pool of the same size, with the same number of
concurrent callers. Rounds alternate between the drivers (psycopg, asyncpg, psycopg, ...) so a
noisy neighbour on the machine hits both alike; each gets a fresh database of its own.

    python -m bench.postgres_drivers [--url postgresql://postgres@127.0.0.1:5432/test]
        [--concurrency 16] [--pool 8] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
from typing import Any

import asyncpg
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.common import drive
from bench.loadgen import NOTE_BODY
from mcp_desk.storage.postgres.migrations import MIGRATIONS

TS = "2026-01-01T00:00:00.000000Z"
RESERVE = (
    "INSERT INTO idempotency (scope, key, fingerprint, object_id, created_at) VALUES ({}) "
    "ON CONFLICT DO NOTHING RETURNING object_id"
)
INSERT = (
    "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES ({}) "
    "RETURNING seq, id, owner, title, body, tags, version, created_at, updated_at"
)
LIST = (
    "SELECT seq, id, title, tags, version, updated_at FROM notes WHERE owner = {} "
    "ORDER BY updated_at DESC, seq DESC LIMIT 21"
)


def marks(n: int, style: str) -> str:
    return ", ".join(f"${i}" for i in range(1, n + 1)) if style == "$" else ", ".join(["%s"] * n)


def note_args(i: int) -> tuple[Any, ...]:
    return (f"note_{secrets.token_hex(8)}", "bench", f"Driver probe {i}", NOTE_BODY, ["bench"], TS, TS)


async def admin(url: str, sql: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql)


def with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


class Psycopg:
    name = "psycopg 3.3.9 + psycopg-pool"

    def __init__(self, url: str, size: int) -> None:
        self.pool = AsyncConnectionPool(url, min_size=size, max_size=size, open=False, kwargs={"row_factory": dict_row})

    async def open(self) -> None:
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def create(self, i: int) -> None:
        args = note_args(i)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                RESERVE.format(marks(5, "%")), ("bench:create_note", f"k{i}-{args[0]}", "f", args[0], TS)
            )
            assert await cur.fetchone() is not None
            cur = await conn.execute(INSERT.format(marks(7, "%")), args)
            assert await cur.fetchone() is not None

    async def list(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(LIST.format("%s"), ("bench",))
            assert len(await cur.fetchall()) == 21


class Asyncpg:
    name = "asyncpg 0.32.0 (its pool)"

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.pool: Any = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=self.size, max_size=self.size)

    async def close(self) -> None:
        await self.pool.close()

    async def create(self, i: int) -> None:
        args = note_args(i)
        async with self.pool.acquire() as conn, conn.transaction():
            assert await conn.fetchrow(
                RESERVE.format(marks(5, "$")), "bench:create_note", f"k{i}-{args[0]}", "f", args[0], TS
            )
            assert await conn.fetchrow(INSERT.format(marks(7, "$")), *args)

    async def list(self) -> None:
        async with self.pool.acquire() as conn:
            assert len(await conn.fetch(LIST.format("$1"), "bench")) == 21


async def one_round(driver_cls: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench_{secrets.token_hex(4)}"
    await admin(url, f"CREATE DATABASE {name}")
    try:
        async with await psycopg.AsyncConnection.connect(with_db(url, name), autocommit=True) as conn:
            await conn.execute(MIGRATIONS[0])
        driver = driver_cls(with_db(url, name), args.pool)
        await driver.open()
        try:
            created = await drive(args.concurrency, args.seconds, driver.create)
            listed = await drive(args.concurrency, args.seconds, lambda _i: driver.list())
        finally:
            await driver.close()
        return {"create_note": created, "list_notes": listed}
    finally:
        await admin(url, f"DROP DATABASE {name} WITH (FORCE)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {Psycopg.name: [], Asyncpg.name: []}
    for _ in range(args.rounds):
        for driver_cls in (Psycopg, Asyncpg):
            runs[driver_cls.name].append(await one_round(driver_cls, args.url, args))
    summary = {
        name: {
            op: {
                "calls_per_s_median": statistics.median(r[op]["calls_per_s"] for r in rounds),
                "p99_ms_median": statistics.median(r[op]["p99_ms"] for r in rounds),
            }
            for op in ("create_note", "list_notes")
        }
        for name, rounds in runs.items()
    }
    print(json.dumps({"settings": vars(args), "rounds": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
