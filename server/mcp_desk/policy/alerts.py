"""Security alerts: an error log line, a metric hook, and an optional webhook POST that never blocks.

`alert()` is synchronous and cheap: it logs, calls `on_alert(kind)`, and puts the webhook payload
in a bounded queue (dropping, and counting, when full). `running()` is the background sender the
app's lifespan enters; it POSTs with stdlib `urllib` in a worker thread with a timeout, so no new
runtime dependency is needed. `record_denial()` turns a burst of permission denials by one
principal (`burst_threshold` within `burst_window_seconds`) into one `permission_denied_burst` alert
per window. Kinds are a bounded set, fit for a metric label: auth_failed, path_blocked,
permission_denied_burst (plus whatever other areas pass in).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import structlog

from mcp_desk.errors import ConfigError

MAX_TRACKED_PRINCIPALS = 10_000
log = structlog.get_logger()
Poster = Callable[[str, bytes, float], int]


def post_json(url: str, body: bytes, timeout: float) -> int:
    """POST `body` as JSON with a timeout; returns the HTTP status (runs in a worker thread)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("alert webhook must be http(s)")
    headers = {"Content-Type": "application/json", "User-Agent": "mcp-desk-alerts"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310  # scheme checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # scheme checked above
        return int(response.status)


@dataclass(kw_only=True)
class Alerter:
    """Raises security alerts; inject the clock, the metric hook and (in tests) the poster."""

    on_alert: Callable[[str], None] | None = None
    webhook_url: str | None = None
    clock: Callable[[], float] = time.monotonic
    burst_threshold: int = 5
    burst_window_seconds: float = 60.0
    queue_size: int = 100
    webhook_timeout_seconds: float = 5.0
    poster: Poster = post_json
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    _queue: deque[bytes] = field(default_factory=deque, init=False)
    _wakeup: anyio.Event | None = field(default=None, init=False)
    _idle: anyio.Event | None = field(default=None, init=False)
    _busy: bool = field(default=False, init=False)
    _denials: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, init=False)
    _last_burst: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.webhook_url is not None and urlsplit(self.webhook_url).scheme not in ("http", "https"):
            raise ConfigError("MCP_DESK_ALERT_WEBHOOK_URL: must be an http:// or https:// URL")

    def alert(self, kind: str, **fields: Any) -> None:
        """Raise one alert now: log it, count it, and queue the webhook POST (never blocks)."""
        log.error("security_alert", kind=kind, **fields)
        if self.on_alert is not None:
            try:
                self.on_alert(kind)
            except Exception:  # a broken metric hook must not break the call being audited
                log.exception("alert_hook_failed", kind=kind)
        if self.webhook_url is not None:
            self._enqueue(kind, fields)

    def record_denial(self, principal: str) -> bool:
        """Count a permission denial; True (and one alert) when it completes a burst for `principal`."""
        now = self.clock()
        window = self._window(principal, now)
        last = self._last_burst.get(principal)
        if len(window) < self.burst_threshold or (last is not None and now - last < self.burst_window_seconds):
            return False
        self._last_burst[principal] = now
        self.alert(
            "permission_denied_burst",
            principal=principal,
            denials=len(window),
            window_seconds=self.burst_window_seconds,
        )
        return True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Alerter]:
        """Deliver queued webhook alerts in the background while the block runs (app lifespan)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._deliver_forever)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
        self._wakeup = None

    async def drain(self) -> None:
        """Wait until every queued alert was delivered or failed (inside `running()`; bound it with a deadline)."""
        while self._queue or self._busy:
            idle = self._idle = anyio.Event()
            await idle.wait()

    def pending(self) -> int:
        """How many alerts wait for delivery."""
        return len(self._queue)

    def _window(self, principal: str, now: float) -> deque[float]:
        window = self._denials.pop(principal, None) or deque()
        window.append(now)
        while window and now - window[0] > self.burst_window_seconds:
            window.popleft()
        self._denials[principal] = window
        while len(self._denials) > MAX_TRACKED_PRINCIPALS:
            evicted, _ = self._denials.popitem(last=False)
            self._last_burst.pop(evicted, None)
        return window

    def _enqueue(self, kind: str, fields: dict[str, Any]) -> None:
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            log.warning("alert_webhook_dropped", kind=kind, dropped=self.dropped)
            return
        payload = {"kind": kind, "timestamp": datetime.now(UTC).isoformat(), "source": "mcp-desk", **fields}
        self._queue.append(json.dumps(payload, default=str).encode())
        if self._wakeup is not None:
            self._wakeup.set()

    async def _deliver_forever(self) -> None:
        while True:
            wakeup = self._wakeup = anyio.Event()
            while self._queue and self.webhook_url is not None:
                self._busy = True
                await self._deliver(self.webhook_url, self._queue.popleft())
            self._busy = False
            if self._idle is not None:
                self._idle.set()
            await wakeup.wait()

    async def _deliver(self, url: str, body: bytes) -> None:
        try:
            with anyio.fail_after(self.webhook_timeout_seconds + 1):
                status = await anyio.to_thread.run_sync(
                    self.poster, url, body, self.webhook_timeout_seconds, abandon_on_cancel=True
                )
        except Exception as exc:
            self.failed += 1
            log.warning("alert_webhook_failed", error=type(exc).__name__)
            return
        if 200 <= status < 300:
            self.sent += 1
        else:
            self.failed += 1
            log.warning("alert_webhook_failed", status=status)
