"""Group commit: concurrent callers share one flush (one COMMIT, one fsync) instead of queueing behind it.

A caller queues its item and waits for the flush lock. Whoever gets the lock first takes everything
queued so far as one batch and flushes it in a worker thread; items queued while that flush runs
wait for the lock too, and the first of them to get it flushes them all as the next batch. Every
caller returns only after the flush that holds its item has returned, so an acknowledged item is as
durable as the flush makes it. The flush records an outcome per entry, so a failure of one item
reaches only its own caller; an exception escaping the flush fails every entry of that batch.

A leaf module: storage and the audit log both build on it and must not import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")
X = TypeVar("X")


@dataclass(slots=True, eq=False)
class Entry(Generic[T, R]):
    """One queued item and how its flush ended: the flush sets `result` or `error`."""

    item: T
    result: R | None = None
    error: BaseException | None = None
    done: bool = False


Flush = Callable[[Sequence[Entry[T, R]]], None]


class GroupCommit(Generic[T, R]):
    """Batches queued items and runs `flush` once per batch, in a worker thread unless `thread` is false.

    `flush` runs with the batch in queue order and sets each entry's `result` or `error`. `limiter`
    bounds the worker threads (share one with other work on the same connection); `fast_acquire`
    lets an uncontended caller skip yielding to the event loop, for flushes that never wait.
    """

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        thread: bool = True,
        limiter: anyio.CapacityLimiter | None = None,
        fast_acquire: bool = False,
    ) -> None:
        self._flush = flush
        self._thread = thread
        self._limiter = limiter
        self._lock = anyio.Lock(fast_acquire=fast_acquire)
        self._queue: list[Entry[T, R]] = []
        self._closed = False

    @property
    def queued(self) -> int:
        """Items waiting for the next flush."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue `item` and return its result once the flush that holds it has returned.

        Raises the error the flush recorded for this item (and only this item's), or RuntimeError
        after `close`.
        """
        if self._closed:
            raise RuntimeError("group commit is closed")
        entry: Entry[T, R] = Entry(item)
        self._queue.append(entry)
        async with self._lock:
            if not entry.done:  # else a flush that ran while we waited for the lock took it
                await self._flush_queued()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]  # the flush set it: R, which may itself allow None

    async def exclusive(self, fn: Callable[[], X], *, thread: bool | None = None) -> X:
        """Flush whatever is queued, then run `fn` before any other flush.

        `fn` runs where flushes run unless `thread` says otherwise (a rare blocking step, such as
        opening or closing a file, may belong in a worker thread even when flushes do not).
        """
        async with self._lock:
            await self._flush_queued()
            return await self._call(fn, thread=self._thread if thread is None else thread)

    async def close(self) -> None:
        """Flush whatever is queued and refuse new items from now on."""
        self._closed = True
        async with self._lock:
            await self._flush_queued()

    async def _flush_queued(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            await self._call(lambda: _flush_batch(self._flush, batch), thread=self._thread)

    async def _call(self, fn: Callable[[], X], *, thread: bool) -> X:
        if not thread:
            return fn()
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)


def _flush_batch(flush: Flush[T, R], batch: list[Entry[T, R]]) -> None:
    """Run one flush; whatever escapes it fails the whole batch, and every entry ends done."""
    try:
        flush(batch)
    except BaseException as exc:
        for entry in batch:
            entry.error, entry.result = exc, None
        if not isinstance(exc, Exception):  # KeyboardInterrupt and kin still stop the flushing caller
            raise
    finally:
        for entry in batch:
            entry.done = True
