"""Budget: daily context budget per principal in tokens and USD, alert once, reset at UTC midnight."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mcp_desk.config import Settings
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import BudgetExceeded, LimitsUnavailable
from mcp_desk.policy.budget import Budget
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec, build_chain
from mcp_desk.policy.ratelimit import WindowStore
from tests.clock import ManualClock
from tests.redis_support import closed_port, redis_prefix, redis_storage

__all__ = ["redis_prefix"]  # a fixture, imported for the tests below

pytestmark = pytest.mark.anyio

DAY_START = 1_749_945_600.0  # 2025-06-15T00:00:00Z
TEXT_100_TOKENS = "x" * 388  # {"text":"…"} is 400 bytes


async def _tool(**_: Any) -> dict[str, Any]:
    return {}


def _call(principal: str = "alice", tool: str = "search_docs", rid: str = "r") -> ToolCall:
    who = Principal(id=principal, role="agent", scopes=frozenset())
    return ToolCall(spec=ToolSpec(name=tool, fn=_tool, scope=None), principal=who, arguments={}, request_id=rid)


async def _hundred_tokens(call: ToolCall) -> dict[str, Any]:
    return {"text": TEXT_100_TOKENS}


def _budget(clock: ManualClock, **overrides: Any) -> Budget:
    options: dict[str, Any] = {"price_per_mtok": 3.0, "max_daily_tokens": 300, **overrides}
    return Budget(storage=WindowStore(clock), clock=clock, **options)


def _chain(budget: Budget, endpoint: Next = _hundred_tokens) -> Next:
    return build_chain([budget], endpoint)


async def test_a_spent_token_budget_refuses_with_budget_exceeded_until_utc_midnight() -> None:
    clock = ManualClock(DAY_START + 3600)
    chain = _chain(_budget(clock))
    for n in range(3):
        await chain(_call(rid=f"session-{n}"))

    with pytest.raises(BudgetExceeded) as refused:
        await chain(_call())

    assert refused.value.code == "budget_exceeded"
    assert "300 of 300 tokens" in refused.value.public
    assert "calls resume at 2025-06-16T00:00:00Z, in 82800 seconds" in refused.value.public
    clock.advance(82_799)
    with pytest.raises(BudgetExceeded):
        await chain(_call())
    clock.advance(1)
    assert await chain(_call()) == {"text": TEXT_100_TOKENS}


async def test_a_spend_budget_prices_tokens_as_model_input() -> None:
    budget = _budget(ManualClock(DAY_START + 3600), price_per_mtok=10.0, max_daily_tokens=None, max_daily_spend=0.002)
    chain = _chain(budget)
    await chain(_call())
    await chain(_call())

    with pytest.raises(BudgetExceeded) as refused:
        await chain(_call())
    assert "$0.0020 of $0.002 USD" in refused.value.public
    assert (await budget.snapshot("alice")).cost_usd == pytest.approx(0.002)


async def test_two_principals_have_separate_budgets() -> None:
    chain = _chain(_budget(ManualClock(DAY_START + 3600)))
    for _ in range(3):
        await chain(_call("alice"))

    assert await chain(_call("bob")) == {"text": TEXT_100_TOKENS}


async def test_the_alert_fires_once_when_the_threshold_is_crossed_and_once_when_spent() -> None:
    alerts: list[tuple[str, str, float]] = []
    chain = _chain(_budget(ManualClock(DAY_START + 3600), max_daily_tokens=1000, on_alert=lambda *a: alerts.append(a)))
    for _ in range(7):
        await chain(_call())
    assert alerts == []

    await chain(_call())  # 800 of 1000: crosses 0.8
    await chain(_call())
    assert alerts == [("budget_threshold", "alice", 0.8)]

    await chain(_call())  # 1000 of 1000
    assert alerts == [("budget_threshold", "alice", 0.8), ("budget_exhausted", "alice", 1.0)]


async def test_get_usage_is_charged_but_answers_when_the_budget_is_spent() -> None:
    budget = _budget(ManualClock(DAY_START + 3600), max_daily_tokens=100)
    chain = _chain(budget)
    await chain(_call())

    assert await chain(_call(tool="get_usage")) == {"text": TEXT_100_TOKENS}
    assert (await budget.snapshot("alice")).tokens_used == 200


async def test_cost_and_token_hooks_see_every_charge() -> None:
    costs: list[float] = []
    tokens: list[tuple[str, int]] = []
    chain = _chain(_budget(ManualClock(DAY_START + 3600), on_cost=costs.append, on_tokens=lambda *a: tokens.append(a)))
    await chain(_call(tool="read_doc"))

    assert tokens == [("read_doc", 100)]
    assert costs == [pytest.approx(0.0003)]


async def test_used_ratio_and_health_follow_the_busiest_principal_and_reset_with_the_day() -> None:
    clock = ManualClock(DAY_START + 3600)
    budget = _budget(clock, max_daily_tokens=500, alert_threshold=0.5)
    chain = _chain(budget)
    assert (budget.used_ratio(), budget.health_status()) == (0.0, "ok")

    await chain(_call("alice"))
    await chain(_call("bob"))
    await chain(_call("bob"))
    await chain(_call("bob"))
    assert (budget.used_ratio(), budget.health_status()) == (0.6, "warn")

    await chain(_call("bob"))
    await chain(_call("bob"))
    assert (budget.used_ratio(), budget.health_status()) == (1.0, "fail")
    clock.advance(86_400)
    assert (budget.used_ratio(), budget.health_status()) == (0.0, "ok")


async def test_without_limits_the_budget_only_counts() -> None:
    budget = _budget(ManualClock(DAY_START + 3600), max_daily_tokens=None)
    chain = _chain(budget)
    for _ in range(20):
        await chain(_call())

    snapshot = await budget.snapshot("alice")
    assert (snapshot.tokens_used, snapshot.used_ratio, snapshot.tokens_limit) == (2000, 0.0, None)
    assert snapshot.resets_at == DAY_START + 86_400


def test_the_price_table_comes_from_json_and_a_model_selects_the_price(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_DESK_MODEL_INPUT_PRICE_PER_MTOK", '{"large": 15, "small": 0.8}')
    monkeypatch.setenv("MCP_DESK_PRICING_MODEL", "small")

    assert Settings().input_price_per_mtok == 0.8
    assert Settings(model_input_price_per_mtok=2.5).input_price_per_mtok == 2.5


def test_a_price_table_without_a_known_model_is_refused_naming_the_key() -> None:
    with pytest.raises(ValidationError, match="MCP_DESK_PRICING_MODEL must name a model"):
        Settings(model_input_price_per_mtok={"large": 15.0}, pricing_model="medium")


async def test_two_replicas_on_one_redis_share_one_daily_budget(redis_prefix: str) -> None:
    clock = ManualClock(DAY_START + 3600)
    async with redis_storage(redis_prefix) as store_a, redis_storage(redis_prefix) as store_b:
        alerts: list[str] = []
        replicas = [
            Budget(
                storage=store,
                clock=clock,
                price_per_mtok=3.0,
                max_daily_tokens=300,
                on_alert=lambda kind, *_: alerts.append(kind),
            )
            for store in (store_a, store_b)
        ]
        for n in range(3):
            await _chain(replicas[n % 2])(_call())

        with pytest.raises(BudgetExceeded):
            await _chain(replicas[1])(_call())
        assert (await replicas[0].snapshot("alice")).tokens_used == 300
    assert alerts == ["budget_threshold", "budget_exhausted"]


async def test_an_unreachable_store_refuses_a_limited_call_and_loses_only_an_after_call_charge() -> None:
    errors: list[str] = []
    ran: list[str] = []

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        ran.append(call.spec.name)
        return {"text": "ok"}

    async with redis_storage("dead", url=f"redis://127.0.0.1:{closed_port()}/0") as dead:
        budget = Budget(storage=dead, price_per_mtok=3.0, max_daily_tokens=300, on_store_error=errors.append)
        with pytest.raises(LimitsUnavailable) as refused:
            await _chain(budget, endpoint)(_call())
        with pytest.raises(LimitsUnavailable):
            await budget.snapshot("alice")
        # get_usage is never refused by the budget: it runs, and only its charge is lost.
        assert await _chain(budget, endpoint)(_call(tool="get_usage")) == {"text": "ok"}

    assert refused.value.retry_after_seconds == 5
    assert ran == ["get_usage"]
    assert errors == ["budget", "budget", "budget"]


async def test_the_in_process_store_decides_and_alerts_exactly_as_redis_does(redis_prefix: str) -> None:
    """WindowStore takes a synchronous path, a Redis store the awaited one: the same calls, the same answers."""
    clock = ManualClock(DAY_START + 7200)
    calls = [("alice", "search_docs")] * 4 + [("alice", "get_usage"), ("bob", "search_docs")]

    async def run(store: Any) -> tuple[list[str], list[str], Any]:
        alerts: list[str] = []
        budget = Budget(
            storage=store,
            clock=clock,
            price_per_mtok=3.0,
            max_daily_tokens=300,
            on_alert=lambda k, *_: alerts.append(k),
        )
        outcomes = []
        for principal, tool in calls:
            try:
                await _chain(budget)(_call(principal, tool))
                outcomes.append("ok")
            except BudgetExceeded as exc:
                outcomes.append(exc.public)
        return outcomes, alerts, (await budget.snapshot("alice"), budget.used_ratio(), budget.health_status())

    async with redis_storage(redis_prefix) as store:
        expected = await run(store)

    assert await run(WindowStore(clock)) == expected
    assert expected[0][3].startswith("daily context budget used up (300 of 300 tokens)")
    assert expected[1] == ["budget_threshold", "budget_exhausted"]
