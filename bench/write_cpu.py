"""CPU and wall time per `create_note` through the whole app in-process, one call at a time.

The real tool, storage (SQLite, `power` durability: every commit fsynced) and guard chain, called by
the official client over the in-memory transport (no sockets, so the HTTP stack's noise is out; the
client's own CPU is in the figure, the same for every build). For A/B runs of two checkouts, run it
with each checkout's virtualenv in turn, several times, and compare medians:

    python -m bench.write_cpu [--calls 300] [--rounds 2] [--database-url postgresql://...]

With `--database-url` the notes go to that PostgreSQL database (its own server's commit) instead of SQLite.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from pydantic import SecretStr

from bench.common import raised_overrides
from bench.loadgen import NOTE_BODY
from mcp_desk.app import create_app
from mcp_desk.config import Settings


def cpu_seconds() -> float:
    """User + system CPU of this process, every thread included (the storage's worker threads too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(calls: int, rounds: int, database_url: str | None = None) -> list[dict[str, int]]:
    """`rounds` timed rounds of `calls` sequential create_note calls, after 50 warm-up calls."""
    root = Path(tempfile.mkdtemp(prefix="mcp-desk-write-cpu-"))
    overrides: dict[str, Any] = {**raised_overrides(), "storage_path": root / "data", "export_path": root / "exports"}
    if database_url is not None:
        overrides["database_url"] = SecretStr(database_url)
    settings = Settings(_env_file=None, **overrides)
    results = []
    try:
        app = create_app(settings, transport="memory")
        async with app.lifespan(), Client(app.server) as client:
            for i in range(50):
                await client.call_tool("create_note", {"title": f"warm-up {i}", "body": NOTE_BODY})
            for _ in range(rounds):
                cpu0, wall0 = cpu_seconds(), time.perf_counter()
                for i in range(calls):
                    await client.call_tool("create_note", {"title": f"note {i}", "body": NOTE_BODY})
                cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
                results.append(
                    {"cpu_us_per_call": round(cpu / calls * 1e6), "wall_us_per_call": round(wall / calls * 1e6)}
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Print one line per round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", help="a PostgreSQL database to write to instead of SQLite")
    args = parser.parse_args(argv)
    for result in anyio.run(measure, args.calls, args.rounds, args.database_url):
        print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
