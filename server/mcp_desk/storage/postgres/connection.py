"""The PostgreSQL connection pool (asyncpg): bounded, with statement timeouts and clear failures.

Every failure of the database itself (unreachable, restarting, a statement over its timeout, the
pool exhausted) becomes `StorageUnavailable` with a message that names no host, user or password.
A failure on a connection the server closed (a database restart) is retried once on a fresh
connection when nothing can have been committed yet, so service comes back by itself as soon as
the database does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import structlog

from mcp_desk.errors import StorageUnavailable

log = structlog.get_logger()
R = TypeVar("R")
Conn = Any  # asyncpg.Connection (asyncpg ships no type information)

NOT_SAVED = "nothing was saved: the database cannot be reached right now; try the call again in a few seconds"
NOT_CONFIRMED = (
    "the database connection failed while the change was being committed, so it may or may not have been saved; "
    "read the object again before retrying (with an idempotency_key a retry cannot create a duplicate)"
)
NOT_READ = "the database cannot be reached right now; try the call again in a few seconds"
BUSY = "the database is busy (every connection of this server is in use); try the call again in a few seconds"
COLLIDED = "nothing was saved: the change collided with another one made at the same moment; try it again"
TIMED_OUT = "the database took too long to answer and the statement was cancelled; nothing was saved, try again"

# Errors of the connection or the server rather than of the statement: the database is unavailable.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # the connection closed under us
    asyncpg.InternalClientError,  # a statement sent just as the server ended the connection
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,  # 57P01: terminated by a restart
    asyncpg.exceptions.CrashShutdownError,
)
_SERVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a read-only standby
    asyncpg.exceptions.OperatorInterventionError,  # class 57
    asyncpg.exceptions.PostgresSystemError,  # class 58: I/O error
)


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolConfig:
    """How many connections, how long a statement may run, how long to wait for a connection."""

    min_size: int = 1
    max_size: int = 10
    statement_timeout_ms: int = 5000
    acquire_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0


def describe(url: str) -> str:
    """The URL without user or password (`postgresql://host:port/db`), for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Database:
    """A bounded asyncpg pool and the transaction / read helpers the repository uses."""

    def __init__(self, url: str, config: PoolConfig | None = None) -> None:
        self._url = url
        self.where = describe(url)
        self.config = config or PoolConfig()
        self._pool: Any = None

    async def open(self) -> None:
        """Connect the pool (its minimum size); RuntimeError naming only host, port and database otherwise."""
        config = self.config
        try:
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=config.min_size,
                max_size=config.max_size,
                timeout=config.connect_timeout_s,
                command_timeout=config.statement_timeout_ms / 1000 + 5,
                max_inactive_connection_lifetime=300,
                server_settings={
                    "application_name": "mcp-desk",
                    "statement_timeout": str(config.statement_timeout_ms),
                    "idle_in_transaction_session_timeout": str(max(config.statement_timeout_ms * 4, 10000)),
                    "jit": "off",
                    # Search statements are prepared; a generic plan cannot see how common a word is and
                    # reads every match of a frequent one. Plan each execution with its own values.
                    "plan_cache_mode": "force_custom_plan",
                },
            )
        except (*_CONNECTION_ERRORS, *_SERVER_ERRORS, asyncpg.PostgresError, TimeoutError) as exc:
            raise RuntimeError(f"cannot connect to the database {self.where}: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close every connection (waits for the ones in use to be released)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    def pool_state(self) -> dict[str, int]:
        """Connections of the pool by state (for the `mcp_desk_db_pool_connections` gauge)."""
        pool = self._pool
        if pool is None:
            return {"idle": 0, "in_use": 0, "max": self.config.max_size}
        size, idle = pool.get_size(), pool.get_idle_size()
        return {"idle": idle, "in_use": size - idle, "max": pool.get_max_size()}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection of the pool (StorageUnavailable when none frees up within the acquire timeout)."""
        try:
            conn = await self.pool.acquire(timeout=self.config.acquire_timeout_s)
        except TimeoutError:
            log.warning("storage_pool_exhausted", max_size=self.config.max_size)
            raise StorageUnavailable(BUSY) from None
        except asyncpg.PostgresError as exc:  # a new connection refused: not accepting connections, too many...
            raise _Retryable(type(exc).__name__) from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    async def read(self, fn: Callable[[Conn], Awaitable[R]]) -> R:
        """Run a read; one retry on a fresh connection if the first one was dead (a database restart)."""
        return await self._attempt(fn, write=False)

    async def transaction(self, fn: Callable[[Conn], Awaitable[R]]) -> R:
        """Run `fn` in a transaction and return once it is committed.

        A failure before COMMIT rolls everything back (retried once on a fresh connection when the
        connection itself had died); one during COMMIT is reported as possibly saved.
        """
        return await self._attempt(fn, write=True)

    async def _attempt(self, fn: Callable[[Conn], Awaitable[R]], *, write: bool) -> R:
        for attempt in (1, 2):
            try:
                return await self._once(fn, write=write)
            except _Retryable as retry:
                if retry.collided:
                    log.info("storage_transaction_collided", attempt=attempt, error=retry.kind)
                else:
                    await self.pool.expire_connections()  # the others were opened before the restart too
                    log.warning("storage_connection_lost", attempt=attempt, error=retry.kind)
                if attempt == 2:
                    public = COLLIDED if retry.collided else NOT_SAVED if write else NOT_READ
                    raise StorageUnavailable(public, error=retry.kind) from None
        raise AssertionError("unreachable")

    async def _once(self, fn: Callable[[Conn], Awaitable[R]], *, write: bool) -> R:
        committing = False
        try:
            async with self.connection() as conn:
                if not write:
                    return await fn(conn)
                tx = conn.transaction()
                await tx.start()
                try:
                    result = await fn(conn)
                except BaseException:
                    await _rollback(tx)
                    raise
                committing = True
                await tx.commit()
                return result
        except asyncpg.exceptions.QueryCanceledError:
            log.warning("storage_statement_timeout", timeout_ms=self.config.statement_timeout_ms)
            raise StorageUnavailable(TIMED_OUT if write else NOT_READ) from None
        except asyncpg.exceptions.TransactionRollbackError as exc:  # class 40: a deadlock; nothing was committed
            raise _Retryable(type(exc).__name__, collided=True) from None
        except _CONNECTION_ERRORS as exc:
            if committing:
                log.error("storage_commit_unconfirmed", error=type(exc).__name__)
                raise StorageUnavailable(NOT_CONFIRMED, error=type(exc).__name__) from None
            raise _Retryable(type(exc).__name__) from None
        except _SERVER_ERRORS as exc:
            log.error("storage_unavailable", error=type(exc).__name__, sqlstate=getattr(exc, "sqlstate", None))
            raise StorageUnavailable(NOT_SAVED if write else NOT_READ, error=type(exc).__name__) from None


class _Retryable(Exception):
    """Nothing was committed and the work may run again: on a fresh connection, or after a collision."""

    def __init__(self, kind: str, *, collided: bool = False) -> None:
        super().__init__(kind)
        self.kind, self.collided = kind, collided


async def _rollback(tx: Any) -> None:
    with contextlib.suppress(*_CONNECTION_ERRORS):  # the connection is gone: the server rolled it back
        await tx.rollback()
