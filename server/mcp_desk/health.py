"""Health checks: time-bounded probes whose answers never carry internal error text, paths or versions.

A check is a name and an async probe returning `CheckResult`. The factories below wrap what other
components expose (a storage write/read probe, an audit writability test, budget and sandbox state)
and turn it into ok / warn / fail with a fixed, public detail.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
import structlog

__all__ = [
    "CheckResult",
    "HealthCheck",
    "audit_check",
    "budget_check",
    "overall_status",
    "rate_limiter_check",
    "redis_check",
    "run_checks",
    "sandbox_check",
    "sessions_check",
    "storage_check",
]

log = structlog.get_logger()

CheckStatus = Literal["ok", "warn", "fail"]
OverallStatus = Literal["healthy", "degraded", "unhealthy"]
DEFAULT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """One check's verdict; `detail` is a fixed public phrase, never exception text."""

    status: CheckStatus
    detail: str | None = None


OK = CheckResult(status="ok")
Probe = Callable[[], Awaitable[CheckResult]]


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthCheck:
    """A named probe with a time bound; a probe that hangs past it fails as "timed out"."""

    name: str
    probe: Probe
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # A shared engine (PostgreSQL, Redis): when it fails the replica cannot serve, so readiness is 503 too
    # and a load balancer takes it out (a spent budget, a warning sandbox or a full local disk never do).
    gates_readiness: bool = False


async def _run_one(check: HealthCheck) -> CheckResult:
    try:
        with anyio.fail_after(check.timeout_seconds):
            return await check.probe()
    except TimeoutError:
        log.warning("health_check_timed_out", check=check.name, timeout_seconds=check.timeout_seconds)
        return CheckResult(status="fail", detail="timed out")
    except Exception:
        log.warning("health_check_failed", check=check.name, exc_info=True)
        return CheckResult(status="fail", detail="check failed")


async def run_checks(checks: Sequence[HealthCheck]) -> dict[str, CheckResult]:
    """Run every check concurrently, each within its own time bound."""
    results: dict[str, CheckResult] = {}

    async def run(check: HealthCheck) -> None:
        results[check.name] = await _run_one(check)

    async with anyio.create_task_group() as tg:
        for check in checks:
            tg.start_soon(run, check)
    return {check.name: results[check.name] for check in checks}


def overall_status(results: Mapping[str, CheckResult]) -> OverallStatus:
    """unhealthy if any check fails, degraded if any warns, else healthy."""
    statuses = {result.status for result in results.values()}
    if "fail" in statuses:
        return "unhealthy"
    return "degraded" if "warn" in statuses else "healthy"


async def _in_thread(fn: Callable[[], object]) -> object:
    # abandon_on_cancel: a probe stuck on a dead disk must not hold the health endpoint past its bound.
    return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


def storage_check(
    probe: Callable[[], Awaitable[None]],
    *,
    shared: bool = False,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> HealthCheck:
    """Storage: `probe` performs a real write and read; any exception is a failure."""

    async def check() -> CheckResult:
        try:
            await probe()
        except Exception:
            log.warning("storage_probe_failed", exc_info=True)
            return CheckResult(status="fail", detail="write/read probe failed")
        return CheckResult(status="ok", detail="write/read probe passed")

    return HealthCheck(name="storage", probe=check, timeout_seconds=timeout_seconds, gates_readiness=shared)


def audit_check(writable: Callable[[], bool], *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> HealthCheck:
    """Audit sink: `writable()` (run in a thread) says whether records can be appended."""

    async def check() -> CheckResult:
        if await _in_thread(writable):
            return CheckResult(status="ok")
        return CheckResult(status="fail", detail="audit log not writable")

    return HealthCheck(name="audit", probe=check, timeout_seconds=timeout_seconds)


def budget_check(status_fn: Callable[[], float | None], *, alert_threshold: float = 0.8) -> HealthCheck:
    """Budget: `status_fn()` is the used ratio (highest across principals) or None when no budget is set."""

    async def check() -> CheckResult:
        ratio = status_fn()
        if ratio is None:
            return CheckResult(status="ok", detail="no daily budget configured")
        detail = f"{ratio:.0%} of the daily budget used"
        if ratio >= 1.0:
            return CheckResult(status="fail", detail=detail)
        return CheckResult(status="warn" if ratio >= alert_threshold else "ok", detail=detail)

    return HealthCheck(name="budget", probe=check)


def sandbox_check(
    status_fn: Callable[[], str], *, isolated_levels: frozenset[str] = frozenset({"bwrap"})
) -> HealthCheck:
    """Sandbox: `status_fn()` names the isolation level; anything short of full isolation warns."""

    async def check() -> CheckResult:
        level = status_fn()
        public = level if level.replace("_", "").replace("-", "").isalnum() and len(level) <= 32 else "reduced"
        if level in isolated_levels or level == "disabled":
            return CheckResult(status="ok", detail=f"isolation: {public}")
        return CheckResult(status="warn", detail=f"isolation: {public}")

    return HealthCheck(name="sandbox", probe=check)


def sessions_check(count_fn: Callable[[], int], cap: int, *, warn_ratio: float = 0.9) -> HealthCheck:
    """HTTP sessions: warn when the open count nears the cap (new sessions are refused at the cap)."""

    async def check() -> CheckResult:
        count = count_fn()
        detail = f"{count} of {cap} sessions open"
        return CheckResult(status="warn" if count >= cap * warn_ratio else "ok", detail=detail)

    return HealthCheck(name="sessions", probe=check)


def rate_limiter_check(
    healthy: Callable[[], bool] | Callable[[], Awaitable[bool]], *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> HealthCheck:
    """Rate limiter: `healthy()` checks the limiter storage (`limits` storage.check()); sync ones run in a thread."""

    async def check() -> CheckResult:
        if inspect.iscoroutinefunction(healthy):
            answer = await healthy()
        else:
            answer = await _in_thread(healthy)
        if answer:
            return CheckResult(status="ok")
        return CheckResult(status="fail", detail="limiter storage unreachable")

    return HealthCheck(name="rate_limits", probe=check, timeout_seconds=timeout_seconds)


def redis_check(
    ping: Callable[[], Awaitable[bool]], *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> HealthCheck:
    """Redis (shared limits and fan-out): `ping()` answers True; a failure makes the replica unready."""

    async def check() -> CheckResult:
        if await ping():
            return CheckResult(status="ok", detail="reachable")
        return CheckResult(status="fail", detail="unreachable: limited calls are refused until it returns")

    return HealthCheck(name="redis", probe=check, timeout_seconds=timeout_seconds, gates_readiness=True)
