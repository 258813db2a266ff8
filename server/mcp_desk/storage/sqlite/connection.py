"""The SQLite connections: one writer (group commit) and one reader, each used from a worker thread."""

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

from mcp_desk.errors import StorageUnavailable
from mcp_desk.groupcommit import Entry, GroupCommit
from mcp_desk.storage.common import UNAVAILABLE

log = structlog.get_logger()
R = TypeVar("R")
Work = Callable[[sqlite3.Connection], Any]
# FULL: a commit is fsynced before it returns (survives a power loss); NORMAL in WAL: a commit survives a
# crash of the process, and the WAL is fsynced at checkpoints only.
Synchronous = Literal["FULL", "NORMAL"]


class Connection:
    """A sqlite3 connection used from worker threads, one statement batch at a time."""

    def __init__(self, path: Path, *, readonly: bool, synchronous: Synchronous = "FULL") -> None:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            _enable_wal(self.conn)
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute("PRAGMA cache_size = -16000")
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
        """
        return cast(R, await self.commits.submit(fn))

    def close(self) -> None:
        """Close the connection (after the last commit)."""
        with self.lock:
            self.conn.close()

    def _commit(self, batch: Sequence[Entry[Work, Any]]) -> None:
        with self.lock:
            commit_batch(self.conn, batch)


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
