"""Audit: one record per decision, written through an `AuditSink` by the `Audit` guard.

Records are written after the decision, so each carries its outcome. For calls that change state,
`Audit.intent` (placed innermost, just before the endpoint) also writes a `tool_invocation` record
*before* the tool runs: it is write-ahead evidence that survives a crash mid-call, and if it cannot
be written the call is refused with nothing done. Read-only calls and refusals get one record only.

Waiting for the disk: a write is answered only once its intent record survives a power loss. With
`journal_chain` set (SQLite), the record commits in the write's own transaction (`mcp_desk.intents`): one
fsync, the database's, on the path of a write; a call that commits nothing waits for an fsync of the
audit file instead. Otherwise (PostgreSQL, whose commits fsync on its own server) the record is fsynced
while the tool runs. Outcome records (every call's, so every read's) are written before the answer, so
they survive a crash of the process, and reach the disk with the next fsync of the audit log, at the
latest the sink's periodic sync. No read waits for an fsync.
Arguments are redacted and size-capped in one walk; raw arguments never reach a sink.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import anyio
import orjson
import structlog

from mcp_desk import intents
from mcp_desk.errors import AppError, BudgetExceeded, PermissionDenied, RateLimited, StorageUnavailable
from mcp_desk.policy.alerts import Alerter
from mcp_desk.policy.pipeline import Next, ToolCall
from mcp_desk.policy.redaction import Redactor, scrub

EventType = Literal[
    "tool_invocation",
    "tool_result",
    "permission_denied",
    "rate_limit_exceeded",
    "budget_exceeded",
    "auth_failed",
    "error",
    "security_alert",
]
MAX_ARGUMENT_BYTES = 2048
MAX_ARGUMENT_CHARS = 256
MAX_ARGUMENT_ITEMS = 50
_SECURITY_REASONS = frozenset({"blocked_path", "path_escape"})
# CallState.confirmation -> the record's `confirmed`; unavailable and requested stay null (nobody answered).
_CONFIRMED = {"accepted": True, "declined": False, "cancelled": False}
log = structlog.get_logger()


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEvent:
    """One audited decision. `arguments` must already be redacted and capped (`Audit` does both)."""

    event_type: EventType
    outcome: str
    principal: str | None = None
    role: str | None = None
    tool: str | None = None
    request_id: str | None = None
    duration_ms: float | None = None
    arguments: Mapping[str, Any] | None = None
    detail: str | None = None
    transport: str | None = None
    trace_id: str | None = None
    confirmed: bool | None = None  # a destructive call the user confirmed (true), refused (false), or never asked
    timestamp: str = field(default_factory=utc_now)

    def fields(self) -> dict[str, Any]:
        """The event as a plain dict (record order)."""
        return {name: getattr(self, name) for name in self.__slots__}


class AuditSink(Protocol):
    """Where audit events go (`JsonlAuditLog`); tests use an in-memory sink with the same shape."""

    async def append(self, event: AuditEvent) -> int:
        """Record one event so that it survives a crash of the process, without waiting for a power-loss flush.

        Returns its seq in the chain. Raises StorageUnavailable on failure.
        """
        ...

    async def sync(self) -> None:
        """Return once every event appended so far is as durable as the configured durability promises."""
        ...

    def synced(self) -> bool:
        """True when `sync` has nothing to do: every event appended so far is as durable as promised."""
        ...

    async def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    async def close(self) -> None:
        """Flush and release the sink."""
        ...

    def writable(self) -> bool:
        """False after a failed write until a write succeeds again (for /health)."""
        ...


def cap_arguments(
    arguments: Mapping[str, Any],
    *,
    max_bytes: int = MAX_ARGUMENT_BYTES,
    max_chars: int = MAX_ARGUMENT_CHARS,
    redact: Callable[[str], str] | None = None,
    screened: bool = False,
) -> dict[str, Any]:
    """Redact (with `redact`) and shorten every string in one walk; over `max_bytes` of JSON, keep only the names.

    `screened`: `Redactor.clean` found nothing to redact in `arguments` (no secret, no secret-named key),
    so the walk only shortens strings and lists, without `scrub`'s per-key checks.
    """
    shorten = functools.partial(_shorten, max_chars=max_chars, redact=redact)
    capped: dict[str, Any] = (
        _shortened(arguments, shorten) if screened else scrub(arguments, shorten, max_items=MAX_ARGUMENT_ITEMS)
    )
    if _json_length_within(capped, max_bytes):
        return capped
    size = len(json.dumps(arguments, default=str))
    return {"_truncated": True, "_bytes": size, "_keys": sorted(map(str, capped))[:20]}


def _shortened(obj: Any, shorten: Callable[[str], str]) -> Any:
    """`scrub(obj, shorten, max_items=MAX_ARGUMENT_ITEMS)` for data with no secret-named key (nothing to replace).

    4.0 against 3.0 us per record for bench/pipeline_cost's arguments (timeit, best of 15 interleaved rounds);
    1,151,371 to 1,107,539 instructions per call (-3.8%, bench/pipeline_instructions.sh: two records a call).
    """
    if isinstance(obj, str):
        return shorten(obj)
    if isinstance(obj, Mapping):
        return {_shortened(key, shorten): _shortened(item, shorten) for key, item in obj.items()}
    if isinstance(obj, list | tuple):
        return [_shortened(item, shorten) for item in obj[:MAX_ARGUMENT_ITEMS]]
    return obj


def _json_length_within(value: Any, limit: int) -> bool:
    """`len(json.dumps(value, default=str)) <= limit`, from orjson's encoding when that bounds it.

    For `orjson_exact` data the stdlib's text is orjson's with one space after each separator (at most
    one per byte) and every byte of a non-ASCII character, or 0x7f, at most 6 characters (`\\uXXXX`), so
    it is at most 2 (ASCII without 0x7f) or 6 times as long. The stdlib encoder runs only when that bound
    is over the limit: 2.95 against 2.40 us per record for bench/pipeline_cost's arguments (timeit), and
    1,443,713 to 1,407,390 instructions per call (-2.5%, bench/pipeline_instructions.sh: two records a call).
    """
    if orjson_exact(value):
        try:
            data = orjson.dumps(value)
        except orjson.JSONEncodeError:  # a lone surrogate: the stdlib decides
            pass
        else:
            factor = 2 if data.isascii() and b"\x7f" not in data else 6
            if factor * len(data) <= limit:
                return True
    return len(json.dumps(value, default=str)) <= limit


def orjson_exact(value: Any) -> bool:
    """True when orjson's sorted compact JSON of `value` is byte-for-byte the stdlib's (given ASCII output).

    Exact JSON types only (orjson has its own encodings of dataclasses, datetimes, enums...), str keys,
    64-bit ints, and floats where both print the same shortest repr (0, or 1e-4 <= |x| < 1e16; the
    stdlib writes 1e-05 where orjson writes 0.00001, NaN where orjson writes null).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-(2**63) <= value < 2**64)
    if kind is float:
        return bool(value == 0.0 or 1e-4 <= abs(value) < 1e16)
    if kind is dict:
        for key, item in value.items():  # loops, not all(genexpr): this runs per audit record
            if type(key) is not str or (type(item) is not str and not orjson_exact(item)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str or orjson_exact(item) for item in value)
    return False


def _shorten(value: str, *, max_chars: int, redact: Callable[[str], str] | None) -> str:
    if redact is not None:
        value = redact(value)  # before cutting: a secret cut in half would no longer be recognised
    if len(value) > max_chars:
        return f"{value[:max_chars]}…[+{len(value) - max_chars} chars]"
    return value


def classify(exc: BaseException | None) -> tuple[EventType, str]:
    """The audit event type and outcome for a call that ended with `exc` (None = success)."""
    if exc is None:
        return "tool_result", "ok"
    if isinstance(exc, PermissionDenied):
        return "permission_denied", exc.outcome
    if isinstance(exc, RateLimited):
        return "rate_limit_exceeded", exc.outcome
    if isinstance(exc, BudgetExceeded):
        return "budget_exceeded", exc.outcome
    if isinstance(exc, AppError):
        return "tool_result", exc.outcome
    return "error", "error"


@dataclass(kw_only=True)
class Audit:
    """Guard: one audit record per call outcome (denials included), then re-raise; never blocks on alerts."""

    sink: AuditSink
    redactor: Redactor
    alerter: Alerter | None = None
    clock: Callable[[], float] = time.perf_counter
    max_argument_bytes: int = MAX_ARGUMENT_BYTES
    on_event: Callable[[str], None] | None = None  # metric hook: mcp_desk_audit_events_total{event_type}
    journal_chain: str | None = None  # the sink's chain, when the storage commits intents with writes (intents.py)

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Run the rest of the chain and record how it ended."""
        start = self.clock()
        try:
            result = await call_next(call)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._record(call, start, None, cancelled=True)
            raise
        except Exception as exc:
            await self._record(call, start, exc)
            raise
        await self._record(call, start, None)
        return result

    async def intent(self, call: ToolCall, call_next: Next) -> Any:
        """Innermost guard: write `tool_invocation` before a state-changing tool runs, or refuse the call."""
        if call.spec.annotations.read_only:
            return await call_next(call)
        try:
            event = self._event(call, "tool_invocation", "started")
            seq = await self.sink.append(event)
            if self.on_event is not None:
                self.on_event("tool_invocation")
        except Exception as exc:
            log.error("audit_write_failed", event_type="tool_invocation", error=type(exc).__name__)
            raise StorageUnavailable("the audit log is unavailable, so the call was not run") from None
        if self.sink.synced():
            # Nothing to fsync (`process` durability): no task group and no task. 1,407,390 to 1,163,274
            # instructions per write (-17%, bench/pipeline_instructions.sh, which runs with the fsync off).
            return await call_next(call)
        if self.journal_chain is not None:
            record = orjson.dumps(event.fields(), default=str).decode()
            return await self._run_journaled(call, call_next, intents.Intent(self.journal_chain, seq, record))
        return await self._run_while_syncing(call, call_next)

    async def _run_journaled(self, call: ToolCall, call_next: Next, intent: intents.Intent) -> Any:
        """Run the tool with its intent riding in its transaction; fsync the audit file only if none committed."""
        token = intents.current.set(intent)
        try:
            result = await call_next(call)
        except Exception:
            if not intent.committed:
                await self._sync_intent(quiet=True)
            raise
        finally:
            intents.current.reset(token)
        if not intent.committed:
            await self._sync_intent()
        return result

    async def _sync_intent(self, *, quiet: bool = False) -> None:
        """fsync the intent record; StorageUnavailable if the disk refuses (unless `quiet`: logged only)."""
        with anyio.CancelScope(shield=True):  # the record reaches the disk even if the call is cancelled
            try:
                await self.sink.sync()
            except Exception as exc:
                log.error("audit_write_failed", event_type="tool_invocation", error=type(exc).__name__)
                if not quiet:
                    raise StorageUnavailable(
                        "the call succeeded, but its audit record could not be made durable"
                    ) from None

    async def _run_while_syncing(self, call: ToolCall, call_next: Next) -> Any:
        """Run the tool while the intent record is fsynced; answer once both are done."""
        failed: list[Exception] = []

        async def sync() -> None:
            with anyio.CancelScope(shield=True):  # the record reaches the disk even if the call fails
                try:
                    await self.sink.sync()
                except Exception as exc:
                    failed.append(exc)

        outcome: list[Any] = []  # the tool's result, or the exception it raised (kept out of the task group)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sync)
            try:
                outcome.append(await call_next(call))
            except Exception as exc:
                outcome.append(exc)
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        if failed:
            log.error("audit_write_failed", event_type="tool_invocation", error=type(failed[0]).__name__)
            raise StorageUnavailable("the change was made, but its audit record could not be made durable")
        return outcome[0]

    async def auth_failed(self, *, reason: str, transport: str, request_id: str | None = None) -> None:
        """Record a refused credential (HTTP 401) and raise the `auth_failed` alert."""
        await self._write(
            AuditEvent(
                event_type="auth_failed", outcome="denied", detail=reason, transport=transport, request_id=request_id
            )
        )
        if self.alerter is not None:
            self.alerter.alert("auth_failed", reason=reason, transport=transport)

    async def _record(self, call: ToolCall, start: float, exc: Exception | None, *, cancelled: bool = False) -> None:
        event_type, outcome = classify(RuntimeError() if cancelled else exc)
        detail = "cancelled" if cancelled else self._detail(exc)
        confirmation = call.state.confirmation
        if detail is None and confirmation is not None:
            detail = f"confirmation {confirmation}"
        duration = round((self.clock() - start) * 1000, 3)
        confirmed = _CONFIRMED.get(confirmation) if confirmation is not None else None
        event = self._event(call, event_type, outcome, duration_ms=duration, detail=detail, confirmed=confirmed)
        await self._write(event)
        if isinstance(exc, PermissionDenied):
            await self._security_checks(call, exc)

    async def _security_checks(self, call: ToolCall, exc: PermissionDenied) -> None:
        if self.alerter is None:
            return
        alerts: list[str] = []
        if exc.context.get("reason") in _SECURITY_REASONS:
            self.alerter.alert("path_blocked", principal=call.principal.id, tool=call.spec.name)
            alerts.append("path_blocked")
        if self.alerter.record_denial(call.principal.id):
            alerts.append("permission_denied_burst")
        for kind in alerts:
            await self._write(self._event(call, "security_alert", "alert", detail=kind))

    def _event(self, call: ToolCall, event_type: EventType, outcome: str, **extra: Any) -> AuditEvent:
        # Arguments with nothing to redact (one scan of their JSON) are only shortened: 12.7 against 17.5 µs
        # of CPU per record for bench/pipeline_cost's create_note arguments (timeit), two records per write;
        # 2.2% of that chain's instructions (callgrind).
        if self.redactor.clean(call.arguments):
            arguments = cap_arguments(call.arguments, max_bytes=self.max_argument_bytes, screened=True)
        else:
            arguments = cap_arguments(call.arguments, max_bytes=self.max_argument_bytes, redact=self.redactor.text)
        return AuditEvent(
            event_type=event_type,
            outcome=outcome,
            principal=call.principal.id,
            role=call.principal.role,
            tool=call.spec.name,
            request_id=call.request_id,
            arguments=arguments,
            transport=call.transport,
            trace_id=call.state.trace_id,
            **extra,
        )

    def _detail(self, exc: Exception | None) -> str | None:
        if exc is None:
            return None
        if isinstance(exc, AppError):
            return self.redactor.text(f"{exc.code}: {exc.public}")[:500]
        return self.redactor.text(f"{type(exc).__name__}: {exc}")[:500]

    async def _write(self, event: AuditEvent) -> None:
        try:
            await self.sink.append(event)  # durable with the next sync: nobody waits for an outcome's fsync
            if self.on_event is not None:
                self.on_event(event.event_type)
        except Exception as exc:
            # The decision already happened; losing its record must not change what the caller sees.
            log.error("audit_write_failed", event_type=event.event_type, error=type(exc).__name__)
