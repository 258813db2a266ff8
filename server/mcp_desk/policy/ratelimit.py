"""Per-principal rate limits: requests, output tokens and per-tool operations a minute.

Counters live in a `limits` async storage chosen by URI (`memory://` by default, `redis://...`
for replicas sharing limits), so a shared store is configuration. The strategy on top is a fixed
window aligned to the injected clock: the window index is part of each counter's key, so every
decision depends only on `clock()`, and the storage's TTL merely garbage-collects old windows.
That is why `limits`' own `MemoryStorage` is not the default: it reads `time.time()` inline and
sweeps on a background timer, so it cannot follow an injected clock; `WindowStore` is a small
counter store with the same semantics (`CounterStore`: what a `limits` async storage offers), driven
by the clock and swept on write. `limits` itself is imported only for a store of its own (Redis).

With several replicas, `redis://` (MCP_DESK_REDIS_URL) puts the counters in Redis through `limits`'
own `RedisStorage` (the `redis` client): its `incr` is one atomic Lua script (INCRBY, then EXPIRE on
a new key), which is all a fixed window needs, so no script of our own is required. A refused or
counted call is decided by the value that one atomic increment returns, so the sum of admitted calls
over all replicas stays within the limit. When Redis does not answer, the decision cannot be made and
the call is refused with `LimitsUnavailable` (fail closed, retryable); the client reconnects by itself
on the next call, so service resumes when Redis returns. A charge after a call ran is best effort:
the work is done, so a lost charge is logged and counted, never turned into a failure.

Keys are always the principal id, never a session: many sessions of one principal share one
allowance. A fixed window may let up to twice the limit through across a window boundary; in
exchange, the retry time is exact and the same for everyone (the end of the current minute).
"""

from __future__ import annotations

import heapq
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import structlog

from mcp_desk.errors import ConfigError, LimitsUnavailable, RateLimited
from mcp_desk.policy.pipeline import Next, ToolCall
from mcp_desk.policy.tokens import result_tokens

WINDOW_SECONDS = 60
KEY_PREFIX = "mcp-desk/rl"
SPEND_EXEMPT_TOOLS = frozenset({"get_usage"})
REDIS_SCHEMES = frozenset({"redis", "rediss"})
UNAVAILABLE_RETRY_SECONDS = 5

log = structlog.get_logger()

Scope = Literal["requests", "tokens", "tool"]
StoreErrorHook = Callable[[str], None]
"""`on_store_error(operation)`: the counter store failed; operation is `rate_limit` or `budget`."""


def _ignore(*_: object) -> None:
    """Default hook: do nothing."""


class CounterStore(Protocol):
    """Counters that expire: `WindowStore`, or a `limits` async storage (`limits.aio.storage.Storage`)."""

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to `key` (created to expire in `expiry` seconds) and return the new value."""
        ...

    async def get(self, key: str) -> int:
        """The counter's value, 0 when it does not exist or expired."""
        ...

    async def check(self) -> bool:
        """True when the store answers."""
        ...


def _store_failure(exc: Exception) -> Exception | None:
    """The error inside a `limits` StorageError, else None (only a store `limits` made, importing it, raises one)."""
    errors = sys.modules.get("limits.errors")
    if errors is not None and isinstance(exc, errors.StorageError):
        cause: Exception = exc.storage_error
        return cause
    return None


@contextmanager
def deciding(operation: str, on_error: StoreErrorHook) -> Iterator[None]:
    """Turn a counter-store failure during a limit decision into `LimitsUnavailable` (fail closed)."""
    try:
        yield
    except Exception as exc:
        if (cause := _store_failure(exc)) is None:
            raise
        on_error(operation)
        log.warning("limit_store_unreachable", operation=operation, error=type(cause).__name__)
        raise LimitsUnavailable(
            "limits are unavailable: the shared rate-limit store (Redis) did not answer, so nothing was run; "
            f"retry after {UNAVAILABLE_RETRY_SECONDS} seconds",
            retry_after_seconds=UNAVAILABLE_RETRY_SECONDS,
            scope="unavailable",
        ) from None


@contextmanager
def charging(operation: str, on_error: StoreErrorHook) -> Iterator[None]:
    """Charge a call that already ran: a store failure is logged and counted, never raised (the work is done)."""
    try:
        yield
    except Exception as exc:
        if (cause := _store_failure(exc)) is None:
            raise
        on_error(operation)
        log.warning("limit_charge_lost", operation=operation, error=type(cause).__name__)


class Clock(Protocol):
    """Wall-clock seconds since the epoch (UTC); `time.time` in production, a manual clock in tests."""

    def __call__(self) -> float: ...


class WindowStore:
    """In-process `CounterStore` whose expiry follows an injected clock (no threads).

    Expired counters are swept on every write, oldest first, so idle principals cost nothing. Not a
    subclass of `limits`' Storage: importing `limits` (with wrapt, deprecated, packaging) took 60-140 ms of
    a stdio start under `-X importtime`, and its error-wrapping layer around every method cost 11,000
    instructions a call (0.8% of bench/pipeline_cost's chain under callgrind).
    """

    def __init__(self, clock: Clock = time.time) -> None:
        """An empty store reading time from `clock`."""
        self.clock = clock
        self._counts: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        """Live counters held (for tests and metrics)."""
        return len(self._counts)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` to `key`, creating it to expire `expiry` seconds from now."""
        return self.add(key, expiry, amount)

    async def get(self, key: str) -> int:
        """The counter's value, 0 once expired."""
        return self.value(key)

    def add(self, key: str, expiry: float, amount: int = 1) -> int:
        """`incr` without the coroutine: what the guards call on an in-process store."""
        now = self.clock()
        self._sweep(now)
        if self._expiry.get(key, now) <= now:
            self._counts[key] = 0
            self._expiry[key] = now + expiry
            heapq.heappush(self._heap, (now + expiry, key))
        self._counts[key] += amount
        return self._counts[key]

    def value(self, key: str) -> int:
        """`get` without the coroutine."""
        if self._expiry.get(key, 0.0) <= self.clock():
            return 0
        return self._counts.get(key, 0)

    async def get_expiry(self, key: str) -> float:
        """When `key` expires (now if it does not exist)."""
        return self._expiry.get(key, self.clock())

    async def check(self) -> bool:
        """Always healthy."""
        return True

    async def reset(self) -> int | None:
        """Drop every counter."""
        count = len(self._counts)
        self._counts.clear()
        self._expiry.clear()
        self._heap.clear()
        return count

    async def clear(self, key: str) -> None:
        """Drop one counter."""
        self._counts.pop(key, None)
        self._expiry.pop(key, None)

    def dump(self) -> dict[str, tuple[int, float]]:
        """Live counters as `{key: (count, expires_at)}`, to carry today's usage across a restart."""
        now = self.clock()
        return {key: (count, self._expiry[key]) for key, count in self._counts.items() if self._expiry[key] > now}

    def load(self, counters: Mapping[str, tuple[int, float]]) -> None:
        """Restore counters from `dump()`; expired ones are skipped."""
        now = self.clock()
        for key, (count, expires_at) in counters.items():
            if expires_at > now:
                self._counts[key], self._expiry[key] = int(count), float(expires_at)
                heapq.heappush(self._heap, (float(expires_at), key))

    def _sweep(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires_at:
                del self._counts[key], self._expiry[key]


def open_storage(
    uri: str,
    *,
    clock: Clock = time.time,
    key_prefix: str = "mcp-desk",
    timeout_seconds: float = 2.0,
    connection_pool: object | None = None,
) -> CounterStore:
    """The counter store for `uri`: `memory://` → WindowStore; `redis://…` etc. → `limits`' async storage.

    Redis uses the `redis` client (on `connection_pool` when given, which its owner closes), bounded
    connect and read timeouts (a dead server fails a decision within `timeout_seconds`), keys under
    `key_prefix`, and errors wrapped as `limits`' `StorageError`.
    """
    scheme = uri.split("://", 1)[0]
    if scheme in {"memory", "async+memory"}:
        return WindowStore(clock)
    options: dict[str, Any] = {}
    if scheme.removeprefix("async+") in REDIS_SCHEMES:
        options = {
            "implementation": "redispy",
            "key_prefix": key_prefix,
            "wrap_exceptions": True,
            "socket_timeout": timeout_seconds,
            "socket_connect_timeout": timeout_seconds,
        }
        if connection_pool is not None:
            options = {**options, "connection_pool": connection_pool}
    from limits.aio.storage import Storage
    from limits.errors import ConfigurationError
    from limits.storage import storage_from_string

    try:
        storage = storage_from_string(uri if uri.startswith("async+") else "async+" + uri, **options)
    except ConfigurationError as exc:
        # limits' own message may echo the URI, password included; name only the scheme.
        detail = str(exc) if "prerequisite" in str(exc) else f"unknown storage scheme {scheme!r}"
        raise ConfigError(f"MCP_DESK_RATE_LIMIT_STORAGE_URI: {detail}") from None
    if not isinstance(storage, Storage):
        raise ConfigError(f"MCP_DESK_RATE_LIMIT_STORAGE_URI: {scheme} has no async limits storage")
    return storage


def save_counters(storage: CounterStore, path: Path) -> None:
    """Write a WindowStore's live counters to `path` atomically (shutdown); other stores persist themselves."""
    if isinstance(storage, WindowStore):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(storage.dump()))
        os.replace(tmp, path)


def load_counters(storage: CounterStore, path: Path) -> None:
    """Restore counters saved by `save_counters` (start-up); a missing or unreadable file starts empty."""
    if isinstance(storage, WindowStore) and path.is_file():
        try:
            counters = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            log.warning("rate_limit_state_unreadable", path=str(path))
            return
        storage.load({str(key): (int(value[0]), float(value[1])) for key, value in counters.items()})


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageSnapshot:
    """A principal's allowance in the current minute, as the limiter enforces it."""

    requests_limit: int
    requests_remaining: int
    tokens_limit: int
    tokens_remaining: int
    tools_remaining: Mapping[str, int]
    resets_at: float
    resets_in_seconds: float


@dataclass(kw_only=True, slots=True)
class _Peak:
    window: int = -1
    ratio: float = 0.0


@dataclass(kw_only=True)
class RateLimit:
    """Guard: refuses a principal's call over its requests, tokens or per-tool allowance this minute.

    Raises `RateLimited` naming the limit and `retry_after_seconds`; the registry shows the model
    "rate_limited: …" and Audit records `rate_limit_exceeded`. `context["scope"]` is one of
    `requests`, `tokens`, `tool` (the `mcp_desk_rate_limited_total{scope}` label).
    """

    storage: CounterStore
    requests_per_minute: int
    tokens_per_minute: int
    per_tool: Mapping[str, int] = field(default_factory=dict)
    spend_exempt: frozenset[str] = SPEND_EXEMPT_TOOLS
    clock: Clock = time.time
    on_store_error: StoreErrorHook = _ignore
    _peak: _Peak = field(default_factory=_Peak, init=False, repr=False)

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Check and count the call, run it, then charge its output tokens to this minute."""
        if isinstance(self.storage, WindowStore):
            return await self._call_in_process(self.storage, call, call_next)
        with deciding("rate_limit", self.on_store_error):
            await self._admit(call.principal.id, call.spec.name)
        result = await call_next(call)
        with charging("rate_limit", self.on_store_error):
            window, now = self._window()  # a long call is charged to the minute it finished in
            key = _key("tokens", call.principal.id, window)
            tokens = await self.storage.incr(key, _ttl(now), result_tokens(call, result))
            self._observe(window, tokens / self.tokens_per_minute)
        return result

    async def _call_in_process(self, store: WindowStore, call: ToolCall, call_next: Next) -> Any:
        """`__call__` on an in-process store: the same decisions and charge, without awaiting the counters.

        A `WindowStore` cannot fail, so `deciding`/`charging` have nothing to catch. Up to four counter
        operations here and two in Budget, none awaited, no context entered: 1,498,303 to 1,443,713
        instructions per call (-3.6%, bench/pipeline_instructions.sh), both guards' in-process paths.
        """
        window, now = self._window()
        principal, tool, ttl = call.principal.id, call.spec.name, _ttl(now)
        if tool not in self.spend_exempt:
            used = store.value(_key("tokens", principal, window))
            self._enforce("tokens", used, self.tokens_per_minute, now=now, over=used >= self.tokens_per_minute)
        if (limit := self.per_tool.get(tool)) is not None:
            count = store.add(_key(f"tool/{tool}", principal, window), ttl, 1)
            self._enforce("tool", count, limit, now=now, over=count > limit, tool=tool)
        count = store.add(_key("requests", principal, window), ttl, 1)
        self._enforce("requests", count, self.requests_per_minute, now=now, over=count > self.requests_per_minute)
        result = await call_next(call)
        window, now = self._window()  # a long call is charged to the minute it finished in
        tokens = store.add(_key("tokens", principal, window), _ttl(now), result_tokens(call, result))
        self._observe(window, tokens / self.tokens_per_minute)
        return result

    async def _admit(self, principal: str, tool: str) -> None:
        window, now = self._window()
        if tool not in self.spend_exempt:
            used = await self.storage.get(_key("tokens", principal, window))
            self._enforce("tokens", used, self.tokens_per_minute, now=now, over=used >= self.tokens_per_minute)
        if (limit := self.per_tool.get(tool)) is not None:
            count = await self.storage.incr(_key(f"tool/{tool}", principal, window), _ttl(now), 1)
            self._enforce("tool", count, limit, now=now, over=count > limit, tool=tool)
        count = await self.storage.incr(_key("requests", principal, window), _ttl(now), 1)
        self._enforce("requests", count, self.requests_per_minute, now=now, over=count > self.requests_per_minute)

    async def snapshot(self, principal_id: str) -> UsageSnapshot:
        """What `principal_id` may still do this minute, and when the minute resets."""
        with deciding("rate_limit", self.on_store_error):
            return await self._snapshot(principal_id)

    async def _snapshot(self, principal_id: str) -> UsageSnapshot:
        window, now = self._window()
        requests = await self.storage.get(_key("requests", principal_id, window))
        tokens = await self.storage.get(_key("tokens", principal_id, window))
        tools = {
            tool: max(0, limit - await self.storage.get(_key(f"tool/{tool}", principal_id, window)))
            for tool, limit in self.per_tool.items()
        }
        resets_at = (window + 1) * WINDOW_SECONDS
        return UsageSnapshot(
            requests_limit=self.requests_per_minute,
            requests_remaining=max(0, self.requests_per_minute - requests),
            tokens_limit=self.tokens_per_minute,
            tokens_remaining=max(0, self.tokens_per_minute - tokens),
            tools_remaining=tools,
            resets_at=resets_at,
            resets_in_seconds=resets_at - now,
        )

    def saturation(self) -> float:
        """Highest share (0..1) of a requests/tokens/tool allowance any principal used this minute here."""
        window, _ = self._window()
        return self._peak.ratio if self._peak.window == window else 0.0

    async def healthy(self) -> bool:
        """True when the counter store answers (always, in memory)."""
        return await self.storage.check()

    def _window(self) -> tuple[int, float]:
        now = self.clock()
        return int(now // WINDOW_SECONDS), now

    def _observe(self, window: int, ratio: float) -> None:
        if self._peak.window != window:
            self._peak.window, self._peak.ratio = window, 0.0
        self._peak.ratio = max(self._peak.ratio, min(ratio, 1.0))

    def _enforce(self, scope: Scope, count: int, limit: int, *, now: float, over: bool, tool: str = "") -> None:
        self._observe(int(now // WINDOW_SECONDS), count / limit)
        if over:
            raise _refused(scope, limit, now=now, tool=tool)


def _refused(scope: Scope, limit: int, *, now: float, tool: str) -> RateLimited:
    retry = retry_after(now)
    return RateLimited(
        f"{_describe(scope, limit, tool)} reached; retry after {retry} seconds",
        retry_after_seconds=retry,
        scope=scope,
        limit=limit,
    )


def retry_after(now: float) -> int:
    """Whole seconds until the current window ends (at least 1), as HTTP Retry-After wants."""
    window_end = (math.floor(now / WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    return max(1, math.ceil(window_end - now))


def _describe(scope: Scope, limit: int, tool: str) -> str:
    if scope == "requests":
        return f"rate limit of {limit} tool calls per minute"
    if scope == "tokens":
        return f"rate limit of {limit} output tokens per minute"
    return f"rate limit of {limit} {tool} calls per minute"


def _key(kind: str, principal: str, window: int) -> str:
    return f"{KEY_PREFIX}/{kind}/{window}/{principal}"


def _ttl(now: float) -> int:
    """Seconds a counter must live: to the end of its window, plus one for clock skew between replicas."""
    return retry_after(now) + 1
