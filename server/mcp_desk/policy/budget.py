"""Daily context budget per principal: output tokens and their estimated cost as model input.

Every token a tool returns is paid for as model input on the next turn, so each result's estimate
(`mcp_desk.policy.tokens`) is charged to the caller's UTC day, in tokens and in USD at the
configured input price per million tokens. Counters live in the same `limits` storage as the
rate limits (one key per principal per UTC day), so a Redis URI shares and persists them across
replicas and restarts; with `memory://`, `save_counters`/`load_counters` carry them over a clean
restart. The increment is atomic, so the call that crosses the alert threshold is exactly one per
principal per day, on every replica. As with the rate limits, an unreachable Redis refuses a
limited call before it runs (`LimitsUnavailable`, retryable) and never fails one that already ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mcp_desk.errors import BudgetExceeded
from mcp_desk.policy.pipeline import Next, ToolCall
from mcp_desk.policy.ratelimit import (
    SPEND_EXEMPT_TOOLS,
    Clock,
    CounterStore,
    StoreErrorHook,
    WindowStore,
    charging,
    deciding,
)
from mcp_desk.policy.tokens import result_tokens

DAY_SECONDS = 86_400
KEY_PREFIX = "mcp-desk/budget"
TOKENS_PER_PRICE_UNIT = 1_000_000

AlertHook = Callable[[str, str, float], None]
"""`on_alert(kind, principal_id, ratio)`; kind is `budget_threshold` or `budget_exhausted`."""
HealthStatus = Literal["ok", "warn", "fail"]


def _ignore(*_: object) -> None:
    """Default hook: do nothing."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetSnapshot:
    """A principal's spend today (UTC) against its daily budget."""

    tokens_used: int
    tokens_limit: int | None
    cost_usd: float
    spend_limit_usd: float | None
    used_ratio: float
    resets_at: float
    resets_in_seconds: float


@dataclass(kw_only=True, slots=True)
class _Peak:
    day: int = -1
    ratio: float = 0.0


@dataclass(kw_only=True)
class Budget:
    """Guard: charges each result to the caller's day; refuses with `BudgetExceeded` once it is spent.

    Tools in `exempt` (`get_usage`) are charged but never refused, so a caller can always learn
    why it is refused and when the day resets. With neither limit set, it only counts.
    """

    storage: CounterStore
    price_per_mtok: float
    max_daily_tokens: int | None = None
    max_daily_spend: float | None = None
    alert_threshold: float = 0.8
    on_alert: AlertHook = _ignore
    on_cost: Callable[[float], None] = _ignore
    on_tokens: Callable[[str, int], None] = _ignore
    exempt: frozenset[str] = SPEND_EXEMPT_TOOLS
    clock: Clock = time.time
    on_store_error: StoreErrorHook = _ignore
    _peak: _Peak = field(default_factory=_Peak, init=False, repr=False)

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Refuse a spent principal, run the call, then charge its result."""
        if isinstance(self.storage, WindowStore):
            return await self._call_in_process(self.storage, call, call_next)
        principal, tool = call.principal.id, call.spec.name
        if self._limits(tool):
            with deciding("budget", self.on_store_error):
                day, now = self._day()
                self._admit(await self.storage.get(_key(principal, day)), day, now)
        result = await call_next(call)
        tokens = self._count(call, result)
        with charging("budget", self.on_store_error):
            day, now = self._day()  # a call that ends after midnight is charged to the new day
            self._charged(principal, await self.storage.incr(_key(principal, day), _ttl(now), tokens), tokens, day)
        return result

    async def _call_in_process(self, store: WindowStore, call: ToolCall, call_next: Next) -> Any:
        """`__call__` on an in-process store (which cannot fail): the same steps, the counters not awaited."""
        principal, tool = call.principal.id, call.spec.name
        if self._limits(tool):
            day, now = self._day()
            self._admit(store.value(_key(principal, day)), day, now)
        result = await call_next(call)
        tokens = self._count(call, result)
        day, now = self._day()
        self._charged(principal, store.add(_key(principal, day), _ttl(now), tokens), tokens, day)
        return result

    def _limits(self, tool: str) -> bool:
        """Whether a call of `tool` can be refused: with no limit set nothing is, only counted."""
        limited = self.max_daily_tokens is not None or self.max_daily_spend is not None
        return limited and tool not in self.exempt

    def _admit(self, used: int, day: int, now: float) -> None:
        self._observe(day, self.ratio(used))
        if self.ratio(used) >= 1.0:
            raise self._refusal(used, now=now)

    def _count(self, call: ToolCall, result: Any) -> int:
        """The result's tokens, reported to the metrics hooks."""
        tokens = result_tokens(call, result)
        self.on_tokens(call.spec.name, tokens)
        self.on_cost(self.cost(tokens))
        return tokens

    def _charged(self, principal: str, total: int, tokens: int, day: int) -> None:
        """After `tokens` were added to the day's counter, which now holds `total`: alerts and the peak."""
        self._alert(principal, before=self.ratio(total - tokens), after=self.ratio(total))
        self._observe(day, self.ratio(total))

    def cost(self, tokens: int) -> float:
        """Estimated USD a model pays to read `tokens` tokens."""
        return tokens * self.price_per_mtok / TOKENS_PER_PRICE_UNIT

    def ratio(self, tokens: int) -> float:
        """Share of the daily budget `tokens` uses: the tighter of the token and the spend limit."""
        ratio = 0.0  # up to five times a call: no list built
        if self.max_daily_tokens is not None:
            ratio = max(ratio, tokens / self.max_daily_tokens)
        if self.max_daily_spend is not None:
            ratio = max(ratio, self.cost(tokens) / self.max_daily_spend)
        return ratio

    async def snapshot(self, principal_id: str) -> BudgetSnapshot:
        """What `principal_id` has spent today and when the day resets."""
        with deciding("budget", self.on_store_error):
            return await self._snapshot(principal_id)

    async def _snapshot(self, principal_id: str) -> BudgetSnapshot:
        day, now = self._day()
        used = await self.storage.get(_key(principal_id, day))
        resets_at = float((day + 1) * DAY_SECONDS)
        return BudgetSnapshot(
            tokens_used=used,
            tokens_limit=self.max_daily_tokens,
            cost_usd=self.cost(used),
            spend_limit_usd=self.max_daily_spend,
            used_ratio=self.ratio(used),
            resets_at=resets_at,
            resets_in_seconds=resets_at - now,
        )

    def used_ratio(self) -> float:
        """Highest budget share (0..1) any principal seen here has used today: `mcp_desk_budget_used_ratio`."""
        day, _ = self._day()
        return self._peak.ratio if self._peak.day == day else 0.0

    def health_status(self) -> HealthStatus:
        """`ok`; `warn` once some principal crossed the alert threshold; `fail` once one is refused."""
        ratio = self.used_ratio()
        if ratio >= 1.0:
            return "fail"
        return "warn" if ratio >= self.alert_threshold else "ok"

    def _day(self) -> tuple[int, float]:
        now = self.clock()
        return int(now // DAY_SECONDS), now

    def _observe(self, day: int, ratio: float) -> None:
        if self._peak.day != day:
            self._peak.day, self._peak.ratio = day, 0.0
        self._peak.ratio = max(self._peak.ratio, min(ratio, 1.0))

    def _alert(self, principal: str, *, before: float, after: float) -> None:
        if before < self.alert_threshold <= after:
            self.on_alert("budget_threshold", principal, after)
        if before < 1.0 <= after:
            self.on_alert("budget_exhausted", principal, after)

    def _refusal(self, used: int, *, now: float) -> BudgetExceeded:
        resets_at = (int(now // DAY_SECONDS) + 1) * DAY_SECONDS
        wait = max(1, int(resets_at - now))
        reset_text = datetime.fromtimestamp(resets_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return BudgetExceeded(
            f"daily context budget used up ({self._spent(used)}); calls resume at {reset_text}, "
            f"in {wait} seconds; get_usage still answers",
            retry_after_seconds=wait,
        )

    def _spent(self, used: int) -> str:
        parts = []
        if self.max_daily_tokens is not None:
            parts.append(f"{used} of {self.max_daily_tokens} tokens")
        if self.max_daily_spend is not None:
            parts.append(f"${self.cost(used):.4f} of ${self.max_daily_spend:g} USD")
        return ", ".join(parts)


def _key(principal: str, day: int) -> str:
    return f"{KEY_PREFIX}/tokens/{day}/{principal}"


def _ttl(now: float) -> int:
    """Until the end of the UTC day, plus an hour of slack for clock skew and late readers."""
    return int((now // DAY_SECONDS + 1) * DAY_SECONDS - now) + 3600
