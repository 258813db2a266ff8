"""A PostgreSQL restart under load, through the storage layer: what callers see, and that nothing acknowledged is lost.

Writers create notes (each with its own idempotency key) and readers list them while the database
server is restarted by `--restart` (default: the Debian cluster command). Every call's outcome is
recorded; afterwards every note whose create_note returned is read back, and the distinct error
messages callers got are printed with their counts. Restarting the server disturbs every database on
it: run this on a machine where nothing else needs PostgreSQL at that moment.

    python -m bench.postgres_restart [--url postgresql://postgres@127.0.0.1:5432/test] [--writers 8]
        [--seconds 12] [--restart-after 3] [--restart "pg_ctlcluster --skip-systemctl-redirect 15 main restart"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import subprocess
import time
from collections import Counter

import asyncpg

from mcp_desk.errors import AppError
from mcp_desk.logging import configure_logging
from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.postgres import PostgresStorage

SCOPE = NoteScope(owner="bench")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--restart-after", type=float, default=3.0)
    parser.add_argument("--restart", default="pg_ctlcluster --skip-systemctl-redirect 15 main restart")
    args = parser.parse_args()
    configure_logging("error", "console")
    name = f"bench_restart_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(args.url)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    store = PostgresStorage(args.url.rsplit("/", 1)[0] + "/" + name)
    acknowledged: list[str] = []
    outcomes: Counter[str] = Counter()
    timeline: list[tuple[float, str]] = []
    started = time.perf_counter()
    try:
        async with store.open():

            async def writer(w: int) -> None:
                i = 0
                while time.perf_counter() - started < args.seconds:
                    i += 1
                    try:
                        made = await store.create_note(
                            owner="bench", title=f"w{w} n{i}", body="restart", tags=[], idempotency_key=f"{w}-{i}"
                        )
                        acknowledged.append(made.id)
                        outcome = "ok"
                    except AppError as exc:
                        outcome = f"{exc.code}: {exc.public}"
                        await asyncio.sleep(0.05)  # a client backing off before it retries
                    outcomes["create_note " + outcome] += 1
                    timeline.append((time.perf_counter() - started, outcome))

            async def reader() -> None:
                while time.perf_counter() - started < args.seconds:
                    try:
                        await store.list_notes(SCOPE, tag=None, cursor=None, limit=20)
                        outcomes["list_notes ok"] += 1
                    except AppError as exc:
                        outcomes[f"list_notes {exc.code}: {exc.public}"] += 1
                        await asyncio.sleep(0.05)

            async def restart() -> float:
                await asyncio.sleep(args.restart_after)
                t0 = time.perf_counter()
                await asyncio.to_thread(subprocess.run, shlex.split(args.restart), check=True)
                return time.perf_counter() - t0

            results = await asyncio.gather(restart(), reader(), *(writer(w) for w in range(args.writers)))
            restart_seconds = results[0]
            first_error = next((t for t, o in timeline if o != "ok"), None)
            last_error = max((t for t, o in timeline if o != "ok"), default=None)
            found = await store.db.read(
                lambda conn: conn.fetchval("SELECT count(*) FROM notes WHERE id = ANY($1::text[])", acknowledged)
            )
        print(
            json.dumps(
                {
                    "restart_command_seconds": round(restart_seconds, 2),
                    "errors_from_s": None if first_error is None else round(first_error, 2),
                    "errors_until_s": None if last_error is None else round(last_error, 2),
                    "acknowledged_writes": len(acknowledged),
                    "acknowledged_writes_found_after": found,
                    "outcomes": dict(outcomes.most_common()),
                },
                indent=2,
            )
        )
    finally:
        admin = await asyncpg.connect(args.url)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
