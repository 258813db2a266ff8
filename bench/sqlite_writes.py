"""What bounds `create_note` over HTTP: one fsync'd commit per call. Group commit is the remedy.

N concurrent writers create notes for a fixed time against mcp-desk's own storage (its schema,
`synchronous=FULL`) in three ways:

- `storage.create_note`: today's path (one transaction, one commit, then a read-back, per call);
- `one commit per note`: the same INSERT, one transaction each, no read-back;
- `group commit`: a single writer task takes every insert queued so far (bounded), runs them in
  one transaction and wakes all their callers: one fsync for many notes, same durability (nobody
  is answered before the commit that holds their note).

    python -m bench.sqlite_writes [--concurrency 32] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from bench import common
from bench.loadgen import NOTE_BODY

INSERT = "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)"


def row(i: int) -> tuple[Any, ...]:
    """One note row as create_note would insert it."""
    ts = "2026-01-01T00:00:00.000000Z"
    return (f"note_w{i:014x}", "bench", f"Write probe {i}", NOTE_BODY, '["bench"]', ts, ts)


async def drive(concurrency: int, seconds: float, one: Any) -> dict[str, Any]:
    """Closed loop: `concurrency` tasks call `one(i)` back to back for `seconds`; notes/s and latencies."""
    result = await common.drive(concurrency, seconds, one)
    return {"notes_per_s": result.pop("calls_per_s"), **result}


async def run(concurrency: int, seconds: float) -> dict[str, Any]:
    """All three write paths on fresh databases."""
    from mcp_desk.storage.sqlite import SqliteStorage

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mcp-desk-writes-") as tmp:
        for mode in ("storage.create_note", "one commit per note", "group commit"):
            storage = SqliteStorage(Path(tmp) / f"{mode.replace(' ', '-')}.db")
            async with storage.open():
                if mode == "storage.create_note":

                    async def one(i: int, storage: SqliteStorage = storage) -> Any:
                        return await storage.create_note(
                            owner="bench",
                            title=f"Write probe {i}",
                            body=NOTE_BODY,
                            tags=["bench"],
                            idempotency_key=None,
                        )

                    results[mode] = await drive(concurrency, seconds, one)
                elif mode == "one commit per note":

                    async def single(i: int, storage: SqliteStorage = storage) -> Any:
                        return await storage.w.transaction(lambda c: c.execute(INSERT, row(i)))

                    results[mode] = await drive(concurrency, seconds, single)
                else:
                    results[mode] = await group_commit(storage, concurrency, seconds)
    return results


async def group_commit(storage: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    """A bounded queue drained by one writer task, one transaction per batch."""
    send, receive = anyio.create_memory_object_stream[tuple[tuple[Any, ...], anyio.Event]](max_buffer_size=256)
    batches: list[int] = []

    async def writer(inbox: MemoryObjectReceiveStream[tuple[tuple[Any, ...], anyio.Event]]) -> None:
        async with inbox:
            async for first in inbox:
                batch = [first]
                while len(batch) < 256:
                    try:
                        batch.append(inbox.receive_nowait())
                    except anyio.WouldBlock:
                        break
                rows = [r for r, _ in batch]
                await storage.w.transaction(lambda c, rows=rows: c.executemany(INSERT, rows))
                batches.append(len(batch))
                for _, done in batch:
                    done.set()

    async def one(i: int) -> None:
        done = anyio.Event()
        await send.send((row(i), done))
        await done.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer, receive)
        result = await drive(concurrency, seconds, one)
        await send.aclose()
    result["mean_batch"] = round(sum(batches) / max(1, len(batches)), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    print(json.dumps(anyio.run(run, args.concurrency, args.seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
