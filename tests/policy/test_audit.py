"""The Audit guard: one record per decision, redacted and capped arguments, alerts on security events."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from mcp_desk import intents
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import (
    BudgetExceeded,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StorageUnavailable,
)
from mcp_desk.policy.alerts import Alerter
from mcp_desk.policy.audit import Audit, AuditEvent, cap_arguments, classify
from mcp_desk.policy.audit_log import JsonlAuditLog, verify_audit_log
from mcp_desk.policy.permissions import authorize
from mcp_desk.policy.pipeline import READ_ONLY, ToolCall, ToolSpec, build_chain
from mcp_desk.policy.redaction import Redactor
from tests.clock import ManualClock
from tests.support.audit import MemoryAuditSink

pytestmark = pytest.mark.anyio


async def _tool() -> None: ...


GET = ToolSpec(name="get_note", fn=_tool, scope="notes:read", annotations=READ_ONLY)
CREATE = ToolSpec(name="create_note", fn=_tool, scope="notes:write")
ALICE = Principal(id="alice", role="viewer", scopes=frozenset({"notes:read"}))


def _call(spec: ToolSpec = GET, **arguments: Any) -> ToolCall:
    return ToolCall(spec=spec, principal=ALICE, arguments=arguments, request_id="req-1", transport="http")


def _endpoint(
    result: Any = None, exc: BaseException | None = None, clock: ManualClock | None = None
) -> Callable[[ToolCall], Awaitable[Any]]:
    async def endpoint(call: ToolCall) -> Any:
        if clock is not None:
            clock.now += 0.25
        if exc is not None:
            raise exc
        return result

    return endpoint


def _audit(sink: MemoryAuditSink, **kwargs: Any) -> Audit:
    return Audit(sink=sink, redactor=Redactor(), **kwargs)


async def test_a_successful_call_writes_one_tool_result_with_duration_and_request_id() -> None:
    sink, clock = MemoryAuditSink(), ManualClock(100.0)
    chain = build_chain([_audit(sink, clock=clock)], _endpoint({"id": "n1"}, clock=clock))
    assert await chain(_call(note_id="n1")) == {"id": "n1"}
    [event] = sink.events
    assert (event.event_type, event.outcome, event.tool, event.principal, event.role) == (
        "tool_result",
        "ok",
        "get_note",
        "alice",
        "viewer",
    )
    assert (event.request_id, event.duration_ms, event.transport) == ("req-1", 250.0, "http")
    assert event.arguments == {"note_id": "n1"}


@pytest.mark.parametrize(
    ("exc", "event_type", "outcome"),
    [
        (PermissionDenied("no"), "permission_denied", "denied"),
        (RateLimited("slow down", retry_after_seconds=3), "rate_limit_exceeded", "rate_limited"),
        (BudgetExceeded("spent"), "budget_exceeded", "budget"),
        (InvalidInput("bad"), "tool_result", "invalid"),
        (NotFound("gone"), "tool_result", "error"),
        (Conflict("stale"), "tool_result", "error"),
        (RuntimeError("boom"), "error", "error"),
    ],
)
async def test_each_outcome_is_recorded_with_its_event_type_and_re_raised(
    exc: Exception, event_type: str, outcome: str
) -> None:
    sink = MemoryAuditSink()
    chain = build_chain([_audit(sink)], _endpoint(exc=exc))
    with pytest.raises(type(exc)):
        await chain(_call())
    assert [(e.event_type, e.outcome) for e in sink.events] == [(event_type, outcome)]
    assert classify(exc) == (event_type, outcome)


async def test_a_denial_by_authorize_is_audited_with_the_missing_scope() -> None:
    sink = MemoryAuditSink()
    chain = build_chain([_audit(sink), authorize], _endpoint({"id": "x"}))
    with pytest.raises(PermissionDenied):
        await chain(_call(CREATE, title="t", body="b"))
    [event] = sink.events
    assert event.event_type == "permission_denied"
    assert event.detail == "permission_denied: create_note needs scope 'notes:write'"


async def test_arguments_and_details_are_redacted_never_raw() -> None:
    sink = MemoryAuditSink()
    secret = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    chain = build_chain([_audit(sink)], _endpoint(exc=RuntimeError(f"upstream said {secret}")))
    with pytest.raises(RuntimeError):
        await chain(_call(body=f"key {secret}", password="hunter2"))
    dumped = json.dumps([e.fields() for e in sink.events])
    assert secret not in dumped
    assert "hunter2" not in dumped
    assert sink.events[0].arguments == {"body": "key [REDACTED:anthropic_key]", "password": "[REDACTED:password]"}
    assert sink.events[0].detail == "RuntimeError: upstream said [REDACTED:anthropic_key]"


@pytest.mark.parametrize(
    "arguments",
    [
        {"title": "VPN drops", "body": "x" * 300, "tags": ["vpn"] * 60},
        {"title": "VPN drops", "body": "x" * 300 + " token ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"},
        {"title": "t", "Pass\nWord": "hunter2"},
    ],
)
async def test_recorded_arguments_are_the_redacted_and_capped_arguments(arguments: dict[str, Any]) -> None:
    """Arguments with nothing to redact skip the redaction (a scan decides); the record is the same either way."""
    sink = MemoryAuditSink()
    await build_chain([_audit(sink)], _endpoint())(_call(CREATE, **arguments))
    assert sink.events[0].arguments == cap_arguments(arguments, redact=Redactor().text)


def test_arguments_are_size_capped() -> None:
    assert cap_arguments({"body": "x" * 1000}, max_chars=10) == {"body": "xxxxxxxxxx…[+990 chars]"}
    nested = cap_arguments({"nested": {"list": ["y" * 300] * 100}}, max_bytes=100_000)["nested"]["list"]
    assert (len(nested), nested[0][-11:]) == (50, "[+44 chars]")
    huge = {f"k{n}": "z" * 200 for n in range(100)}
    capped = cap_arguments(huge, max_bytes=512)
    assert capped["_truncated"] is True
    assert capped["_bytes"] > 512
    assert len(capped["_keys"]) == 20


_TEXT = st.text(st.sampled_from('\ud800a\u00e9\u2026\U0001f600\x7f\n"\\\x01 ,:') | st.characters(), max_size=300)
_ARGUMENT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=60) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    arguments=st.dictionaries(_TEXT, _ARGUMENT, max_size=5), slack=st.integers(-3, 3), scale=st.sampled_from([1, 2, 6])
)
def test_arguments_are_kept_exactly_when_their_stdlib_json_fits(
    arguments: dict[str, Any], slack: int, scale: int
) -> None:
    """The size decision is the stdlib's `len(json.dumps(...)) <= max_bytes`, right at the limit too."""
    capped = cap_arguments(arguments, max_bytes=10**9)
    size = len(json.dumps(capped, default=str))
    for limit in (size + slack, size // scale + slack):
        kept = cap_arguments(arguments, max_bytes=limit)
        if size <= limit:
            assert kept == capped
        else:
            assert (kept["_truncated"], kept["_bytes"]) == (True, len(json.dumps(arguments, default=str)))


_KEYS = st.sampled_from(["title", "body", "tags", "api_key", "Pass\nWord", "token", "note"]) | _TEXT


@settings(max_examples=400, deadline=None)
@given(arguments=st.dictionaries(_KEYS, _ARGUMENT | st.dictionaries(_KEYS, _ARGUMENT, max_size=3), max_size=5))
def test_screened_arguments_are_capped_as_the_redacting_walk_caps_them(arguments: dict[str, Any]) -> None:
    """What `Redactor.clean` passes is only shortened, with the same result as the full redacting walk."""
    redactor = Redactor()
    if redactor.clean(arguments):
        for limit in (10**9, 2048, 64):
            expected = cap_arguments(arguments, max_bytes=limit, redact=redactor.text)
            assert cap_arguments(arguments, max_bytes=limit, screened=True) == expected


def test_a_long_argument_is_redacted_before_it_is_cut() -> None:
    """Cut first, a secret straddling the cut would keep its visible half and lose the pattern that finds it."""
    secret = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    capped = cap_arguments({"body": "x" * 239 + " " + secret}, redact=Redactor().text)
    assert capped == {"body": "x" * 239 + " [REDACTED:anthro…[+8 chars]"}


async def test_intent_writes_tool_invocation_before_a_state_changing_tool_runs() -> None:
    sink, counted = MemoryAuditSink(), list[str]()
    audit = _audit(sink, on_event=counted.append)
    seen: list[list[str]] = []

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        seen.append([e.event_type for e in sink.events])
        return {"id": "n1"}

    chain = build_chain([audit, audit.intent], endpoint)
    await chain(_call(CREATE, title="t"))
    await chain(_call(GET, note_id="n1"))
    assert seen == [["tool_invocation"], ["tool_invocation", "tool_result"]]
    assert counted == ["tool_invocation", "tool_result", "tool_result"]
    assert [(e.event_type, e.tool) for e in sink.events] == [
        ("tool_invocation", "create_note"),
        ("tool_result", "create_note"),
        ("tool_result", "get_note"),
    ]


async def test_when_the_audit_log_is_down_a_write_is_refused_before_it_runs() -> None:
    sink = MemoryAuditSink()
    audit = _audit(sink)
    ran: list[str] = []

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        ran.append(call.spec.name)
        return {}

    chain = build_chain([audit, audit.intent], endpoint)
    sink.fail = True
    with capture_logs() as logs, pytest.raises(StorageUnavailable, match="was not run"):
        await chain(_call(CREATE))
    assert await chain(_call(GET)) == {}
    assert ran == ["get_note"]
    assert {entry["event"] for entry in logs} == {"audit_write_failed"}
    sink.fail = False
    await chain(_call(CREATE))
    assert ran == ["get_note", "create_note"]


async def test_a_cancelled_call_is_still_audited() -> None:
    sink = MemoryAuditSink()
    started = anyio.Event()

    async def endpoint(call: ToolCall) -> Any:
        started.set()
        await anyio.sleep_forever()

    chain = build_chain([_audit(sink)], endpoint)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await chain(_call())

            tg.start_soon(run)
            await started.wait()
            tg.cancel_scope.cancel()
    assert [(e.event_type, e.detail) for e in sink.events] == [("error", "cancelled")]


async def test_blocked_paths_and_denial_bursts_raise_alerts_and_security_records() -> None:
    sink, kinds = MemoryAuditSink(), list[str]()
    alerter = Alerter(on_alert=kinds.append, clock=ManualClock(100.0), burst_threshold=3)
    blocked = PermissionDenied("path is blocked by policy", reason="blocked_path", path=".env")
    chain = build_chain([_audit(sink, alerter=alerter)], _endpoint(exc=blocked))
    with capture_logs():
        for _ in range(3):
            with pytest.raises(PermissionDenied):
                await chain(_call(path=".env"))
    assert kinds == ["path_blocked", "path_blocked", "path_blocked", "permission_denied_burst"]
    security = [e.detail for e in sink.events if e.event_type == "security_alert"]
    assert security == ["path_blocked", "path_blocked", "path_blocked", "permission_denied_burst"]


async def test_auth_failed_is_audited_and_alerted() -> None:
    sink, kinds = MemoryAuditSink(), list[str]()
    audit = _audit(sink, alerter=Alerter(on_alert=kinds.append))
    with capture_logs():
        await audit.auth_failed(reason="invalid key", transport="http", request_id="r9")
    assert [(e.event_type, e.outcome, e.detail) for e in sink.events] == [("auth_failed", "denied", "invalid key")]
    assert kinds == ["auth_failed"]


async def test_a_failing_sink_never_changes_what_the_caller_sees() -> None:
    sink = MemoryAuditSink()
    sink.fail = True
    chain = build_chain([_audit(sink)], _endpoint({"ok": True}))
    with capture_logs() as logs:
        assert await chain(_call()) == {"ok": True}
    assert logs[0]["event"] == "audit_write_failed"
    assert not sink.writable()


async def test_the_guard_and_the_file_log_together_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path, hmac_key=b"k" * 32)
    audit = Audit(sink=sink, redactor=Redactor())
    chain = build_chain([audit, authorize, audit.intent], _endpoint({"id": "n1"}))
    await chain(_call(GET, note_id="n1"))
    with pytest.raises(PermissionDenied):
        await chain(_call(CREATE, title='line1\n{"seq":99}', body="postgres://u:pw99@db/x"))
    await sink.close()
    assert verify_audit_log(path, b"k" * 32).records == 2
    assert "pw99" not in path.read_text()
    await MemoryAuditSink().flush()
    await MemoryAuditSink().close()
    assert AuditEvent(event_type="error", outcome="error").timestamp.endswith("+00:00")


async def test_a_write_whose_intent_record_cannot_be_made_durable_is_reported_as_saved_but_not_durable() -> None:
    """The intent is fsynced while the tool runs, so a failed fsync is known only after the change was made."""
    sink, ran = MemoryAuditSink(), list[str]()
    sink.fail_sync = True
    audit = _audit(sink)

    async def endpoint(call: ToolCall) -> Any:
        ran.append(call.spec.name)
        return {"id": "n1"}

    chain = build_chain([audit, audit.intent], endpoint)
    with capture_logs() as logs, pytest.raises(StorageUnavailable, match="change was made"):
        await chain(_call(CREATE, title="t"))
    assert ran == ["create_note"]
    assert [e.event_type for e in sink.events] == ["tool_invocation", "tool_result"]
    assert any(entry["event"] == "audit_write_failed" for entry in logs)


async def test_a_write_that_fails_raises_its_own_error_after_its_intent_record_is_synced() -> None:
    sink = MemoryAuditSink()
    audit = _audit(sink)
    chain = build_chain([audit, audit.intent], _endpoint(exc=NotFound("no such note")))
    with pytest.raises(NotFound):
        await chain(_call(CREATE, title="t"))
    assert [(e.event_type, e.outcome) for e in sink.events] == [
        ("tool_invocation", "started"),
        ("tool_result", "error"),
    ]


async def test_a_journaled_write_whose_transaction_carried_its_intent_waits_for_no_audit_fsync() -> None:
    """The storage marks the intent committed; a failing audit fsync then cannot touch the call."""
    sink, seen = MemoryAuditSink(), list[intents.Intent]()
    sink.fail_sync = True
    audit = _audit(sink, journal_chain="audit.jsonl")

    async def endpoint(call: ToolCall) -> Any:
        intent = intents.current.get()
        assert intent is not None
        intent.committed = True  # what the storage's transaction does when it commits
        seen.append(intent)
        return {"id": "n1"}

    chain = build_chain([audit, audit.intent], endpoint)
    assert await chain(_call(CREATE, title="t")) == {"id": "n1"}
    assert intents.current.get() is None
    [intent] = seen
    assert (intent.chain, intent.seq) == ("audit.jsonl", 1)
    assert json.loads(intent.record) == {**sink.events[0].fields(), "arguments": {"title": "t"}}


async def test_a_journaled_write_that_committed_nothing_falls_back_to_the_audit_fsync() -> None:
    sink = MemoryAuditSink()
    sink.fail_sync = True
    audit = _audit(sink, journal_chain="audit.jsonl")
    chain = build_chain([audit, audit.intent], _endpoint({"id": "n1"}))
    with pytest.raises(StorageUnavailable, match="could not be made durable"):
        await chain(_call(CREATE, title="t"))
    refused = build_chain([audit, audit.intent], _endpoint(exc=NotFound("no such note")))
    with capture_logs() as logs, pytest.raises(NotFound):  # its own error; the failed fsync is logged
        await refused(_call(CREATE, title="t"))
    assert any(entry["event"] == "audit_write_failed" for entry in logs)
