"""Lifecycle: starting → ready → draining → stopped, shared by the transports and the sidecar.

Calls run inside `track()`. Once draining begins, new calls are refused with `ShuttingDown`;
`drain()` waits for the calls already running, and cancels what is left when the grace runs out.
Waits are event-driven (no polling), and the grace is measured by anyio's clock.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import structlog
from anyio.abc import TaskStatus

from mcp_desk.errors import ShuttingDown

__all__ = ["Lifecycle", "State", "stop_on_signals"]

log = structlog.get_logger()

# After the grace, cancelled calls get this long to unwind (a thread running sqlite3 is not interruptible).
CANCEL_UNWIND_SECONDS = 5.0


class State(enum.StrEnum):
    """Where the process is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """Readiness and in-flight call tracking; build one per app, outside any event loop if need be."""

    def __init__(self) -> None:
        self._state = State.STARTING
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None
        self._draining: anyio.Event | None = None

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def ready(self) -> bool:
        """True while the server accepts work (what /health/ready reports)."""
        return self._state is State.READY

    @property
    def accepting(self) -> bool:
        """True until draining begins; calls that arrive during start-up are served."""
        return self._state in (State.STARTING, State.READY)

    @property
    def in_flight(self) -> int:
        """How many tracked calls are running."""
        return len(self._scopes)

    def mark_ready(self) -> None:
        """Start-up finished: readiness turns 200 (ignored once draining has begun)."""
        if self._state is State.STARTING:
            self._state = State.READY
            log.info("server_ready")

    def begin_drain(self) -> None:
        """Refuse new calls from now on and turn readiness 503; idempotent."""
        if not self.accepting:
            return
        self._state = State.DRAINING
        log.info("drain_started", in_flight=self.in_flight)
        if self._draining is not None:
            self._draining.set()

    async def wait_draining(self) -> None:
        """Return once draining has begun (for transports that must stop accepting connections)."""
        if self.accepting:
            self._draining = self._draining or anyio.Event()
            await self._draining.wait()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Run one call as in-flight work; raises ShuttingDown if draining began, before or during it."""
        if not self.accepting:
            raise ShuttingDown("the server is shutting down and accepts no new calls; retry on another instance")
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield
            finally:
                self._untrack(scope)
        if scope.cancelled_caught:
            raise ShuttingDown("the server shut down before this call finished; it may not have completed")

    def _untrack(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)
        if not self._scopes and self._idle is not None:
            self._idle.set()

    async def drain(self, grace_seconds: float) -> int:
        """Refuse new calls, wait up to `grace_seconds` for running ones, cancel the rest; return how many."""
        self.begin_drain()
        await self._wait_idle(grace_seconds)
        unfinished = self.in_flight
        if unfinished:
            log.warning("drain_grace_expired", unfinished=unfinished)
            for scope in list(self._scopes):
                scope.cancel()
            await self._wait_idle(CANCEL_UNWIND_SECONDS)
        self._state = State.STOPPED
        log.info("drain_finished", cancelled=unfinished)
        return unfinished

    async def _wait_idle(self, seconds: float) -> None:
        if not self._scopes:
            return
        self._idle = anyio.Event()
        with anyio.move_on_after(seconds):
            await self._idle.wait()


async def stop_on_signals(
    lifecycle: Lifecycle,
    *,
    grace_seconds: float,
    stop: Callable[[], object],
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> int:
    """Wait for SIGTERM/SIGINT, drain within the grace, then call `stop()`; return how many calls were cancelled.

    The process exits 0 because the signal is handled here: nothing re-raises it. Signals that
    arrive during the drain are absorbed (the drain already has a deadline).
    """
    with anyio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            log.info("shutdown_signal_received", signal=signal.Signals(signum).name)
            break
        cancelled = await lifecycle.drain(grace_seconds)
    stop()
    return cancelled
