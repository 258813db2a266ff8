"""RateLimit: per-principal requests, tokens and per-tool limits on an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import ConfigError, LimitsUnavailable, RateLimited
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec, build_chain
from mcp_desk.policy.ratelimit import RateLimit, WindowStore, load_counters, open_storage, save_counters
from tests.clock import ManualClock
from tests.redis_support import closed_port, redis_prefix, redis_storage

__all__ = ["redis_prefix"]  # a fixture, imported for the tests below

pytestmark = pytest.mark.anyio

MINUTE_START = 1_750_000_020.0  # a whole minute (UTC)


async def _tool(**_: Any) -> dict[str, Any]:
    return {}


def _call(principal: str = "alice", tool: str = "get_note", *, transport: str = "http", rid: str = "r") -> ToolCall:
    who = Principal(id=principal, role="agent", scopes=frozenset(), transport=transport)  # type: ignore[arg-type]  # str for brevity
    return ToolCall(spec=ToolSpec(name=tool, fn=_tool, scope=None), principal=who, arguments={}, request_id=rid)


def _returning(text: str) -> Next:
    async def endpoint(call: ToolCall) -> dict[str, Any]:
        return {"text": text}

    return endpoint


def _limiter(clock: ManualClock, **overrides: Any) -> RateLimit:
    options: dict[str, Any] = {"requests_per_minute": 3, "tokens_per_minute": 10_000, **overrides}
    return RateLimit(storage=WindowStore(clock), clock=clock, **options)


async def test_a_burst_beyond_rpm_is_refused_with_the_time_left_in_the_minute_then_allowed_after_it() -> None:
    clock = ManualClock(MINUTE_START + 15)
    chain = build_chain([_limiter(clock)], _returning("ok"))
    for _ in range(3):
        await chain(_call())

    with pytest.raises(RateLimited) as refused:
        await chain(_call())

    assert refused.value.retry_after_seconds == 45
    assert refused.value.public == "rate limit of 3 tool calls per minute reached; retry after 45 seconds"
    assert refused.value.context["scope"] == "requests"
    clock.advance(45)
    assert await chain(_call()) == {"text": "ok"}


async def test_many_sessions_of_one_principal_share_one_allowance() -> None:
    chain = build_chain([_limiter(ManualClock(MINUTE_START))], _returning("ok"))
    await chain(_call(transport="http", rid="session-a"))
    await chain(_call(transport="stdio", rid="session-b"))
    await chain(_call(transport="memory", rid="session-c"))

    with pytest.raises(RateLimited):
        await chain(_call(transport="http", rid="session-d"))


async def test_two_principals_do_not_affect_each_other() -> None:
    chain = build_chain([_limiter(ManualClock(MINUTE_START))], _returning("ok"))
    for _ in range(3):
        await chain(_call("alice"))

    assert await chain(_call("bob")) == {"text": "ok"}
    with pytest.raises(RateLimited):
        await chain(_call("alice"))


async def test_a_per_tool_limit_bites_only_that_tool() -> None:
    clock = ManualClock(MINUTE_START)
    chain = build_chain([_limiter(clock, requests_per_minute=10, per_tool={"export_ticket": 2})], _returning("ok"))
    await chain(_call(tool="export_ticket"))
    await chain(_call(tool="export_ticket"))

    with pytest.raises(RateLimited) as refused:
        await chain(_call(tool="export_ticket"))

    assert "2 export_ticket calls per minute" in refused.value.public
    assert refused.value.context["scope"] == "tool"
    assert await chain(_call(tool="get_ticket")) == {"text": "ok"}
    clock.advance(60)
    assert await chain(_call(tool="export_ticket")) == {"text": "ok"}


async def test_the_token_limit_refuses_the_next_call_once_spent_and_resets_at_the_minute() -> None:
    clock = ManualClock(MINUTE_START + 50)
    chain = build_chain([_limiter(clock, requests_per_minute=100, tokens_per_minute=100)], _returning("x" * 300))
    await chain(_call())  # {"text":"xxx…"} is 311 bytes: 78 tokens
    await chain(_call())  # 156 tokens: over, charged after the call

    with pytest.raises(RateLimited) as refused:
        await chain(_call())

    assert refused.value.context["scope"] == "tokens"
    assert refused.value.public == "rate limit of 100 output tokens per minute reached; retry after 10 seconds"
    clock.advance(10)
    assert await chain(_call()) == {"text": "x" * 300}


async def test_get_usage_is_never_refused_for_tokens_but_still_counts_as_a_request() -> None:
    chain = build_chain([_limiter(ManualClock(MINUTE_START), tokens_per_minute=10)], _returning("x" * 300))
    await chain(_call())
    await chain(_call(tool="get_usage"))
    await chain(_call(tool="get_usage"))

    with pytest.raises(RateLimited) as refused:
        await chain(_call(tool="get_usage"))
    assert refused.value.context["scope"] == "requests"


async def test_snapshot_reports_what_is_left_this_minute_and_when_it_resets() -> None:
    clock = ManualClock(MINUTE_START + 20)
    limiter = _limiter(clock, per_tool={"export_ticket": 5})
    chain = build_chain([limiter], _returning("x" * 300))
    await chain(_call(tool="export_ticket"))

    usage = await limiter.snapshot("alice")

    assert (usage.requests_limit, usage.requests_remaining) == (3, 2)
    assert (usage.tokens_limit, usage.tokens_remaining) == (10_000, 10_000 - 78)
    assert usage.tools_remaining == {"export_ticket": 4}
    assert (usage.resets_at, usage.resets_in_seconds) == (MINUTE_START + 60, 40)


async def test_saturation_is_the_busiest_principals_share_this_minute() -> None:
    clock = ManualClock(MINUTE_START)
    limiter = _limiter(clock, requests_per_minute=4)
    chain = build_chain([limiter], _returning("ok"))
    await chain(_call("alice"))
    for _ in range(3):
        await chain(_call("bob"))

    assert limiter.saturation() == 0.75
    clock.advance(60)
    assert limiter.saturation() == 0.0
    assert await limiter.healthy()


async def test_memory_stays_bounded_with_100000_principals_churned() -> None:
    clock = ManualClock(MINUTE_START)
    store = WindowStore(clock)
    limiter = RateLimit(storage=store, requests_per_minute=5, tokens_per_minute=1000, clock=clock)
    chain = build_chain([limiter], _returning("ok"))
    peak = 0
    for n in range(100_000):
        if n % 100 == 0:
            clock.advance(1)
            peak = max(peak, len(store))
        await chain(_call(f"user-{n}"))

    assert peak <= 2 * 100 * 62  # two counters per principal seen in the last 62 seconds
    clock.advance(120)
    await chain(_call("last"))
    assert len(store) == 2


async def test_window_store_expires_clears_and_resets_counters() -> None:
    clock = ManualClock(MINUTE_START)
    store = WindowStore(clock)
    assert await store.incr("k", 10, 2) == 2
    assert await store.get_expiry("k") == MINUTE_START + 10
    clock.advance(10)
    assert await store.get("k") == 0
    assert await store.incr("k", 10) == 1
    await store.clear("k")
    assert await store.get("k") == 0
    await store.incr("j", 10)
    assert await store.reset() == 1
    assert len(store) == 0


async def test_counters_survive_a_clean_restart_through_the_state_file(tmp_path: Path) -> None:
    clock = ManualClock(MINUTE_START)
    before = WindowStore(clock)
    await before.incr("fresh", 100, 7)
    await before.incr("stale", 1, 1)
    clock.advance(5)
    save_counters(before, tmp_path / "counters.json")

    after = WindowStore(clock)
    load_counters(after, tmp_path / "counters.json")

    assert (await after.get("fresh"), await after.get("stale"), len(after)) == (7, 0, 1)


async def test_an_unreadable_state_file_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "counters.json").write_text("{not json")
    store = WindowStore(ManualClock(MINUTE_START))
    load_counters(store, tmp_path / "counters.json")
    load_counters(store, tmp_path / "missing.json")
    assert len(store) == 0


def test_memory_uri_opens_a_clock_driven_store_and_unknown_schemes_are_refused_without_echoing_secrets() -> None:
    assert isinstance(open_storage("memory://"), WindowStore)
    with pytest.raises(ConfigError) as refused:
        open_storage("nosuch://user:hunter2@localhost:1")
    assert str(refused.value) == "MCP_DESK_RATE_LIMIT_STORAGE_URI: unknown storage scheme 'nosuch'"


async def test_two_replicas_on_one_redis_share_one_allowance(redis_prefix: str) -> None:
    """Two limiters (two replicas) on the same Redis: the sum of admitted calls stays within the limit."""
    clock = ManualClock(MINUTE_START + 10)
    async with redis_storage(redis_prefix) as store_a, redis_storage(redis_prefix) as store_b:
        replicas = [
            RateLimit(storage=store, clock=clock, requests_per_minute=5, tokens_per_minute=10_000)
            for store in (store_a, store_b)
        ]
        refusals: list[object] = []
        for n in range(8):
            try:
                await build_chain([replicas[n % 2]], _returning("ok"))(_call())
            except RateLimited as exc:
                refusals.append(exc.context["scope"])

        assert refusals == ["requests"] * 3
        assert (await replicas[1].snapshot("alice")).requests_remaining == 0
        assert await replicas[0].healthy()


async def test_an_unreachable_store_refuses_before_running_and_names_the_cause() -> None:
    errors: list[str] = []
    ran: list[ToolCall] = []

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        ran.append(call)
        return {}

    async with redis_storage("dead", url=f"redis://:hunter2@127.0.0.1:{closed_port()}/0") as dead:
        limiter = RateLimit(storage=dead, requests_per_minute=5, tokens_per_minute=10_000, on_store_error=errors.append)
        with pytest.raises(LimitsUnavailable) as refused:
            await build_chain([limiter], endpoint)(_call())
        with pytest.raises(LimitsUnavailable):
            await limiter.snapshot("alice")
        assert not await limiter.healthy()

    assert ran == []
    assert refused.value.code == "limits_unavailable"
    assert "Redis" in refused.value.public
    assert "hunter2" not in refused.value.public
    assert refused.value.retry_after_seconds == 5
    assert errors == ["rate_limit", "rate_limit"]


async def test_a_store_lost_after_the_call_ran_keeps_the_result_and_counts_the_error(redis_prefix: str) -> None:
    errors: list[str] = []
    async with (
        redis_storage(redis_prefix) as live,
        redis_storage("dead", url=f"redis://127.0.0.1:{closed_port()}/0") as dead,
    ):
        limiter = RateLimit(storage=live, requests_per_minute=5, tokens_per_minute=10_000, on_store_error=errors.append)

        async def endpoint(call: ToolCall) -> dict[str, Any]:
            limiter.storage = dead  # Redis goes away while the call runs
            return {"text": "done"}

        assert await build_chain([limiter], endpoint)(_call()) == {"text": "done"}
    assert errors == ["rate_limit"]


async def test_a_call_that_ends_in_the_next_minute_is_charged_to_that_minute() -> None:
    clock = ManualClock(MINUTE_START + 59)
    limiter = _limiter(clock, tokens_per_minute=100)

    async def slow(call: ToolCall) -> dict[str, Any]:
        clock.advance(2)
        return {"text": "x" * 300}

    await build_chain([limiter], slow)(_call())

    assert (await limiter.snapshot("alice")).tokens_remaining == 22


async def _decisions(limiter: RateLimit, calls: list[tuple[str, str]]) -> list[str]:
    """Each call's outcome through `limiter`: `ok`, or the refusal's scope and message."""
    outcomes = []
    for principal, tool in calls:
        try:
            await build_chain([limiter], _returning("x" * 40))(_call(principal, tool))
            outcomes.append("ok")
        except RateLimited as exc:
            outcomes.append(f"{exc.context['scope']}: {exc.public}")
    return outcomes


async def test_the_in_process_store_decides_exactly_as_redis_does(redis_prefix: str) -> None:
    """WindowStore takes a synchronous path, a Redis store the awaited one: the same calls, the same answers."""
    calls = [("alice", "create_note")] * 3 + [("alice", "get_note")] * 3 + [("bob", "get_usage")] * 6
    options: dict[str, Any] = {"requests_per_minute": 5, "tokens_per_minute": 40, "per_tool": {"create_note": 2}}
    clock = ManualClock(MINUTE_START + 20)
    in_process = RateLimit(storage=WindowStore(clock), clock=clock, **options)
    async with redis_storage(redis_prefix) as store:
        shared = RateLimit(storage=store, clock=clock, **options)
        expected = await _decisions(shared, calls)
        redis_snapshot = await shared.snapshot("alice")

    assert await _decisions(in_process, calls) == expected
    assert "tool: rate limit of 2 create_note calls per minute reached; retry after 40 seconds" in expected
    assert "tokens: rate limit of 40 output tokens per minute reached; retry after 40 seconds" in expected
    assert "requests: rate limit of 5 tool calls per minute reached; retry after 40 seconds" in expected
    assert await in_process.snapshot("alice") == redis_snapshot
    assert in_process.saturation() == shared.saturation() == 1.0
