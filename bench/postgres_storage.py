"""PostgreSQL against SQLite through the storage layer in one run, and search_notes at 1M notes on PostgreSQL.

Part 1 (`throughput`): each backend gets a fresh store (a SQLite file; a new PostgreSQL database)
seeded with the same synthetic notes, then `--concurrency` callers run `create_note`, `list_notes`
(first page of 20) and `search_notes` (the five query kinds of bench/search_notes.py, 20 per page)
for `--seconds` each, straight through the repository (no MCP, no guards). Rounds alternate
(SQLite, PostgreSQL, SQLite, ...) so load from elsewhere on the machine hits both alike.

Part 2 (`search_1m`): a PostgreSQL database is filled with 1M notes by `generate_series` in SQL
(Zipf-like words from the sample runbooks, 40-80 word bodies, two tags, one owner: the worst case
for an owner-scoped search), then each query kind is timed one call at a time through the repository.

    python -m bench.postgres_storage [--url postgresql://postgres@127.0.0.1:5432/test] [--rounds 2]
        [--concurrency 16] [--seconds 3] [--seed 20000] [--million 1000000] [--per-kind 100] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import drive, summarize_ms
from bench.loadgen import NOTE_BODY
from bench.search_notes import KINDS, TAGS, note_rows, queries, vocabulary
from mcp_desk.logging import configure_logging
from mcp_desk.storage.base import NoteScope, Storage
from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.sqlite import SqliteStorage

OWNER = "bench"
SCOPE = NoteScope(owner=OWNER)
SQLITE_INSERT = "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)"
COLUMNS = ["id", "owner", "title", "body", "tags", "created_at", "updated_at"]
BIG_DB = "bench_search_1m"


def db_url(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(store: Storage, count: int) -> None:
    """The same `count` synthetic notes into either backend, in one transaction."""
    rows = list(note_rows(vocabulary(), 0, count, OWNER))
    if isinstance(store, SqliteStorage):
        await store.w.transaction(lambda conn: conn.executemany(SQLITE_INSERT, rows))
    elif isinstance(store, PostgresStorage):
        records = [(*r[:4], json.loads(r[4]), *r[5:]) for r in rows]

        async def copy(conn: Any) -> None:
            await conn.copy_records_to_table("notes", records=records, columns=COLUMNS)
            await conn.execute("ANALYZE notes")

        await store.db.transaction(copy)


async def exercise(store: Storage, args: argparse.Namespace) -> dict[str, Any]:
    await seed(store, args.seed)
    mix = [q for _, q in queries(vocabulary(), 200)]

    async def create(i: int) -> Any:
        return await store.create_note(
            owner=OWNER, title=f"Bench note {i}", body=NOTE_BODY, tags=["bench"], idempotency_key=None
        )

    return {
        "create_note": await drive(args.concurrency, args.seconds, create),
        "list_notes": await drive(
            args.concurrency, args.seconds, lambda _i: store.list_notes(SCOPE, tag=None, cursor=None, limit=20)
        ),
        "search_notes": await drive(
            args.concurrency,
            args.seconds,
            lambda i: store.search_notes(SCOPE, mix[i % len(mix)], cursor=None, limit=20),
        ),
    }


async def sqlite_round(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStorage(Path(tmp) / "bench.db")
        async with store.open():
            return await exercise(store, args)


async def postgres_round(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench_{secrets.token_hex(4)}"
    await admin(args.url, f"CREATE DATABASE {name}")
    try:
        store = PostgresStorage(db_url(args.url, name))
        async with store.open():
            return await exercise(store, args)
    finally:
        await admin(args.url, f"DROP DATABASE {name} WITH (FORCE)")


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        op: {
            "calls_per_s": statistics.median(r[op]["calls_per_s"] for r in rounds),
            "p50_ms": statistics.median(r[op]["p50_ms"] for r in rounds),
            "p99_ms": statistics.median(r[op]["p99_ms"] for r in rounds),
        }
        for op in ("create_note", "list_notes", "search_notes")
    }


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    for i in range(args.rounds):
        runs["sqlite"].append(await sqlite_round(args))
        runs["postgresql"].append(await postgres_round(args))
        print(f"  throughput round {i + 1}/{args.rounds} done", file=sys.stderr)
    return {"rounds": runs, "median": {name: medians(rounds) for name, rounds in runs.items()}}


FILL = """
INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at)
SELECT 'note_' || lpad(to_hex(g), 16, '0'), $1,
       initcap((SELECT string_agg(v.w[1 + floor(power(random(), 4) * v.n)::int], ' ')
                FROM generate_series(1, 6 + g * 0) AS k, (SELECT $3::text[] AS w, cardinality($3::text[]) AS n) AS v)),
       (SELECT string_agg(v.w[1 + floor(power(random(), 4) * v.n)::int], ' ')
        FROM generate_series(1, 40 + g % 41) AS k, (SELECT $3::text[] AS w, cardinality($3::text[]) AS n) AS v),
       ARRAY[($4::text[])[1 + g % 10], ($4::text[])[1 + (g / 10 + 1 + g % 9) % 10]],
       $2, $2
FROM generate_series($5::bigint, $6::bigint) AS g
"""


async def fill_million(url: str, size: int) -> float:
    """Fill (or reuse) the 1M-note database; seconds the fill took (0 when reused)."""
    conn = await asyncpg.connect(url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM notes")
        if have == size:
            return 0.0
        started = time.perf_counter()
        await conn.execute("TRUNCATE notes CASCADE")
        await conn.execute("DROP INDEX IF EXISTS notes_search")
        vocab, batch = vocabulary(), 100_000
        for start in range(1, size + 1, batch):
            end = min(start + batch - 1, size)
            await conn.execute(FILL, OWNER, "2026-01-01T00:00:00.000000Z", vocab, TAGS, start, end)
            print(f"  filled {end:,} notes ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute("CREATE INDEX notes_search ON notes USING gin (search)")
        await conn.execute("VACUUM ANALYZE notes")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def search_million(args: argparse.Namespace) -> dict[str, Any]:
    url = db_url(args.url, BIG_DB)
    conn = await asyncpg.connect(args.url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BIG_DB):
            await conn.execute(f"CREATE DATABASE {BIG_DB}")
    finally:
        await conn.close()
    try:
        store = PostgresStorage(url)
        async with store.open():
            fill_s = await fill_million(url, args.million)
            qs = queries(vocabulary(), args.per_kind)
            for _, q in qs[:25]:  # warm the cache as a running server's would be
                await store.search_notes(SCOPE, q, cursor=None, limit=20)
            samples: dict[str, list[float]] = {k: [] for k in KINDS}
            for kind, q in qs:
                t0 = time.perf_counter()
                await store.search_notes(SCOPE, q, cursor=None, limit=20)
                samples[kind].append(time.perf_counter() - t0)
        every = [s for values in samples.values() for s in values]
        return {
            "notes": args.million,
            "fill_seconds": round(fill_s, 1),
            "all": summarize_ms(every),
            **{k: summarize_ms(v) for k, v in samples.items()},
        }
    finally:
        if not args.keep:
            await admin(args.url, f"DROP DATABASE IF EXISTS {BIG_DB} WITH (FORCE)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=20_000, help="notes each throughput store starts with")
    parser.add_argument("--million", type=int, default=1_000_000, help="notes of the search_1m database")
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help=f"keep the {BIG_DB} database for the next run")
    parser.add_argument("--skip", choices=["throughput", "search_1m"], action="append", default=[])
    args = parser.parse_args()
    configure_logging("warning", "console")  # stdout carries only the JSON result
    out: dict[str, Any] = {"settings": vars(args)}
    if "throughput" not in args.skip:
        out["throughput"] = await throughput(args)
    if "search_1m" not in args.skip:
        out["search_1m"] = await search_million(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
