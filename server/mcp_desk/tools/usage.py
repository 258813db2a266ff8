"""`get_usage`: the caller's remaining rate limit this minute and its daily context budget.

The tool reads the same counters the RateLimit and Budget guards enforce, through the small
Protocols below, so it imports nothing from the guards (tools depend on policy.pipeline only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, Field

from mcp_desk.domain.principal import Principal
from mcp_desk.policy.pipeline import READ_ONLY, ToolSpec


class MinuteUsage(Protocol):
    """The rate limiter's view of one principal this minute (`RateLimit.snapshot`)."""

    @property
    def requests_limit(self) -> int: ...
    @property
    def requests_remaining(self) -> int: ...
    @property
    def tokens_limit(self) -> int: ...
    @property
    def tokens_remaining(self) -> int: ...
    @property
    def tools_remaining(self) -> Mapping[str, int]: ...
    @property
    def resets_at(self) -> float: ...
    @property
    def resets_in_seconds(self) -> float: ...


class DayUsage(Protocol):
    """The budget's view of one principal today (`Budget.snapshot`)."""

    @property
    def tokens_used(self) -> int: ...
    @property
    def tokens_limit(self) -> int | None: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def spend_limit_usd(self) -> float | None: ...
    @property
    def used_ratio(self) -> float: ...
    @property
    def resets_at(self) -> float: ...
    @property
    def resets_in_seconds(self) -> float: ...


class Limiter(Protocol):
    """Anything that reports a principal's allowance this minute."""

    async def snapshot(self, principal_id: str) -> MinuteUsage: ...


class DailyBudget(Protocol):
    """Anything that reports a principal's spend today."""

    async def snapshot(self, principal_id: str) -> DayUsage: ...


class UsageEnv(Protocol):
    """The part of ToolEnv that get_usage reads."""

    @property
    def principal(self) -> Principal: ...
    @property
    def limiter(self) -> Limiter: ...
    @property
    def budget(self) -> DailyBudget: ...


class MinuteAllowance(BaseModel):
    """Remaining allowance in the current minute (per principal, shared by all its sessions)."""

    requests_limit: int = Field(description="Tool calls allowed per minute")
    requests_remaining: int = Field(description="Tool calls left this minute, this one counted")
    tokens_limit: int = Field(description="Output tokens allowed per minute")
    tokens_remaining: int = Field(description="Output tokens left this minute")
    tools_remaining: dict[str, int] = Field(description="Calls left this minute for tools with their own limit")
    resets_at: datetime = Field(description="When the minute's counters reset (UTC)")
    resets_in_seconds: float


class DailyBudgetUsage(BaseModel):
    """Today's (UTC) context spend: tokens returned to you and their estimated cost as model input."""

    tokens_used: int
    tokens_limit: int | None = Field(description="Daily output-token budget; null when unlimited")
    tokens_remaining: int | None
    cost_usd: float = Field(description="Estimated cost of today's tokens as model input, USD")
    spend_limit_usd: float | None = Field(description="Daily spend budget in USD; null when unlimited")
    used_ratio: float = Field(description="Share of the tighter daily budget used; calls are refused at 1")
    resets_at: datetime = Field(description="When the day's budget resets (00:00 UTC)")
    resets_in_seconds: float


class Usage(BaseModel):
    """The caller's rate limit and budget, as the server enforces them."""

    principal: str
    minute: MinuteAllowance
    day: DailyBudgetUsage


async def get_usage(env: UsageEnv) -> Usage:
    """Show your remaining tool calls and output tokens this minute, today's token use and estimated cost
    against your daily budget, and when each resets. Always allowed, even when the budget is spent."""
    minute = await env.limiter.snapshot(env.principal.id)
    day = await env.budget.snapshot(env.principal.id)
    return Usage(
        principal=env.principal.id,
        minute=MinuteAllowance(
            requests_limit=minute.requests_limit,
            requests_remaining=minute.requests_remaining,
            tokens_limit=minute.tokens_limit,
            tokens_remaining=minute.tokens_remaining,
            tools_remaining=dict(minute.tools_remaining),
            resets_at=_utc(minute.resets_at),
            resets_in_seconds=round(minute.resets_in_seconds, 3),
        ),
        day=DailyBudgetUsage(
            tokens_used=day.tokens_used,
            tokens_limit=day.tokens_limit,
            tokens_remaining=None if day.tokens_limit is None else max(0, day.tokens_limit - day.tokens_used),
            cost_usd=round(day.cost_usd, 6),
            spend_limit_usd=day.spend_limit_usd,
            used_ratio=round(day.used_ratio, 4),
            resets_at=_utc(day.resets_at),
            resets_in_seconds=round(day.resets_in_seconds, 3),
        ),
    )


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


TOOLS = [ToolSpec(name="get_usage", fn=get_usage, scope=None, annotations=READ_ONLY, title="Get usage")]
