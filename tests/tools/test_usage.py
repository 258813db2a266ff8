"""get_usage reports exactly what the RateLimit and Budget guards enforce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import BudgetExceeded, RateLimited
from mcp_desk.policy.budget import Budget
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec, build_chain
from mcp_desk.policy.ratelimit import RateLimit, WindowStore
from mcp_desk.policy.tokens import OutputCap, estimate_tokens
from mcp_desk.tools.usage import TOOLS, Usage
from tests.clock import ManualClock

pytestmark = pytest.mark.anyio

START = 1_749_945_600.0 + 3600 + 30  # 01:00:30 UTC


@dataclass(frozen=True)
class Env:
    """The ToolEnv fields get_usage reads."""

    principal: Principal
    limiter: RateLimit
    budget: Budget


async def _search_docs(env: Env) -> dict[str, Any]:
    return {"items": [{"id": "runbooks/disk-full.md", "snippet": "free space " * 30}], "next_cursor": None}


SPECS = {spec.name: spec for spec in [*TOOLS, ToolSpec(name="search_docs", fn=_search_docs, scope="docs:read")]}


def _setup(**budget: Any) -> tuple[RateLimit, Budget, Next]:
    clock = ManualClock(START)
    store = WindowStore(clock)
    limiter = RateLimit(storage=store, requests_per_minute=5, tokens_per_minute=2000, clock=clock)
    spend = Budget(storage=store, price_per_mtok=3.0, clock=clock, **{"max_daily_tokens": 10_000, **budget})

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        env = Env(principal=call.principal, limiter=limiter, budget=spend)
        result = await call.spec.fn(env, **call.arguments)
        return result.model_dump(mode="json") if isinstance(result, Usage) else dict(result)

    return limiter, spend, build_chain([limiter, spend, OutputCap(max_tokens=8000)], endpoint)


def _call(tool: str, principal: str = "alice") -> ToolCall:
    who = Principal(id=principal, role="agent", scopes=frozenset({"docs:read"}))
    return ToolCall(spec=SPECS[tool], principal=who, arguments={}, request_id="r")


async def test_get_usage_reports_what_the_limiter_and_budget_enforce() -> None:
    _, _, chain = _setup()
    first = await chain(_call("search_docs"))
    await chain(_call("search_docs"))
    charged = 2 * estimate_tokens(first)

    usage = Usage.model_validate(await chain(_call("get_usage")))

    assert (usage.principal, usage.minute.requests_limit, usage.minute.requests_remaining) == ("alice", 5, 2)
    assert usage.minute.tokens_remaining == 2000 - charged
    assert usage.minute.resets_in_seconds == 30
    assert usage.minute.resets_at.isoformat() == "2025-06-15T01:01:00+00:00"
    assert (usage.day.tokens_used, usage.day.tokens_limit, usage.day.tokens_remaining) == (
        charged,
        10_000,
        10_000 - charged,
    )
    assert usage.day.cost_usd == pytest.approx(charged * 3.0 / 1_000_000, abs=1e-6)
    assert usage.day.resets_at.isoformat() == "2025-06-16T00:00:00+00:00"
    await chain(_call("search_docs"))
    await chain(_call("search_docs"))
    with pytest.raises(RateLimited):
        await chain(_call("search_docs"))


async def test_get_usage_answers_when_the_daily_budget_is_spent() -> None:
    _, _, chain = _setup(max_daily_tokens=50)
    await chain(_call("search_docs"))
    with pytest.raises(BudgetExceeded):
        await chain(_call("search_docs"))

    usage = Usage.model_validate(await chain(_call("get_usage")))

    assert usage.day.used_ratio >= 1
    assert usage.day.tokens_remaining == 0


async def test_get_usage_needs_no_scope_and_is_read_only() -> None:
    (spec,) = TOOLS
    assert (spec.name, spec.scope, spec.annotations.read_only) == ("get_usage", None, True)
    assert "minute" in Usage.model_json_schema()["properties"]
