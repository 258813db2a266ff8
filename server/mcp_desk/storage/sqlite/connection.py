"""The SQLite connections: one writer (group commit) and a small pool of readers, used from worker threads.

Page cache: SQLite's default here was 16 MB per connection, and each worker thread that touched one
kept its own malloc arena copy of it, so resident memory grew by about 17 MiB with each new peak of
threads. The caches are now small (the operating system's page cache holds the file anyway) and the
threads are bounded by the connections: one per reader and one for the writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anyio
import anyio.to_thread
import structlog

from mcp_desk import intents
from mcp_desk.errors import StorageUnavailable
from mcp_desk.groupcommit import Entry, GroupCommit
from mcp_desk.storage.common import UNAVAILABLE

log = structlog.get_logger()
R = TypeVar("R")
Work = Callable[[sqlite3.Connection], Any]
WRITER_CACHE_KIB = 4096
READER_CACHE_KIB = 2048
READERS = 4
# FULL: a commit is fsynced before it returns (survives a power loss); NORMAL in WAL: a commit survives a
# crash of the process, and the WAL is fsynced at checkpoints only.
Synchronous = Literal["FULL", "NORMAL"]


class Connection:
    """A sqlite3 connection used from worker threads, one statement batch at a time."""

    def __init__(
        self, path: Path, *, readonly: bool, synchronous: Synchronous = "FULL", cache_kib: int = WRITER_CACHE_KIB
    ) -> None:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            _enable_wal(self.conn)
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self.lock = threading.Lock()
        self.limiter = anyio.CapacityLimiter(1)
        self.commits: GroupCommit[Work, Any] = GroupCommit(self._commit, limiter=self.limiter)

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run `fn` on this connection in its worker thread (reads, pragmas, migrations)."""

        def call() -> R:
            with self.lock:
                return fn(self.conn)

        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    async def transaction(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run `fn` in a write transaction; return once that transaction is committed (durable).

        Group commit: transactions queued while a commit is in progress run together in the next one,
        each inside its own SAVEPOINT (an error undoes only that one's changes and goes to its caller
        alone), then one COMMIT (one fsync) makes them all durable before any caller is answered.
        The calling write's audit intent (`mcp_desk.intents.current`), if any, commits with `fn`.
        """
        intent = intents.current.get()  # read here, in the caller's task: the flush may run in another's
        if intent is None:
            return cast(R, await self.commits.submit(fn))
        result = cast(R, await self.commits.submit(_carrying(fn, intent)))
        intent.committed = True
        return result

    def close(self) -> None:
        """Close the connection (after the last commit)."""
        with self.lock:
            self.conn.close()

    def _commit(self, batch: Sequence[Entry[Work, Any]]) -> None:
        with self.lock:
            commit_batch(self.conn, batch)


class ReaderPool:
    """Read-only connections shared by concurrent reads: each read takes a free one, so reads run side by side."""

    def __init__(self, path: Path, *, size: int = READERS, cache_kib: int = READER_CACHE_KIB) -> None:
        self.connections = [Connection(path, readonly=True, cache_kib=cache_kib) for _ in range(size)]
        self._free = list(self.connections)
        self._available = anyio.Semaphore(size)

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run `fn` on a free reader in its worker thread, waiting for one when all are busy."""
        async with self._available:
            connection = self._free.pop()
            try:
                return await connection.run(fn)
            finally:
                self._free.append(connection)

    @property
    def busy(self) -> int:
        """Readers running a read right now."""
        return len(self.connections) - len(self._free)

    def close(self) -> None:
        """Close every reader (after the last read)."""
        for connection in self.connections:
            connection.close()


def _carrying(fn: Callable[[sqlite3.Connection], R], intent: intents.Intent) -> Callable[[sqlite3.Connection], R]:
    """`fn`, then the call's intent record in the same savepoint: both commit, or neither."""

    def tx(conn: sqlite3.Connection) -> R:
        result = fn(conn)
        conn.execute(
            "INSERT OR IGNORE INTO audit_journal (chain, seq, record) VALUES (?, ?, ?)",
            (intent.chain, intent.seq, intent.record),
        )
        return result

    return tx


def commit_batch(conn: sqlite3.Connection, batch: Sequence[Entry[Work, Any]]) -> None:
    """(Worker thread.) One transaction, a savepoint per queued function, one commit."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for entry in batch:
            _run_in_savepoint(conn, entry)
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        log.error("storage_write_failed", error=str(exc))
        for entry in batch:
            entry.error, entry.result = StorageUnavailable(UNAVAILABLE), None


def _run_in_savepoint(conn: sqlite3.Connection, entry: Entry[Work, Any]) -> None:
    conn.execute("SAVEPOINT tx")
    try:
        entry.result = entry.item(conn)
    except sqlite3.OperationalError as exc:
        conn.execute("ROLLBACK TO tx")
        log.error("storage_write_failed", error=str(exc))
        entry.error = StorageUnavailable(UNAVAILABLE)
    except Exception as exc:
        conn.execute("ROLLBACK TO tx")
        entry.error = exc
    conn.execute("RELEASE tx")


def _enable_wal(conn: sqlite3.Connection, *, attempts: int = 1000) -> None:
    """Switch the file to WAL, waiting for servers that start at the same moment.

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked" at once
    instead of waiting for the busy timeout, so the switch is retried (10 s in all at most).
    """
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01)
