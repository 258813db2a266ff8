"""Health checks: each factory's ok / warn / fail, time bounds, and no internal text in details."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from mcp_desk.health import (
    CheckResult,
    HealthCheck,
    audit_check,
    budget_check,
    overall_status,
    rate_limiter_check,
    run_checks,
    sandbox_check,
    sessions_check,
    storage_check,
)

pytestmark = pytest.mark.anyio


async def verdict(check: HealthCheck) -> CheckResult:
    with anyio.fail_after(5):
        return (await run_checks([check]))[check.name]


def file_probe(directory: Path) -> HealthCheck:
    """A real write/read probe, as storage supplies one."""

    async def probe() -> None:
        target = directory / "probe"
        await anyio.Path(target).write_text("ok")
        assert await anyio.Path(target).read_text() == "ok"

    return storage_check(probe)


async def test_storage_that_writes_and_reads_is_ok(tmp_path: Path) -> None:
    assert (await verdict(file_probe(tmp_path))).status == "ok"


async def test_unwritable_storage_fails_without_saying_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    result = await verdict(file_probe(blocker))

    assert result == CheckResult(status="fail", detail="write/read probe failed")


async def test_a_hanging_check_fails_as_timed_out() -> None:
    async def hang() -> None:
        await anyio.sleep_forever()

    check = storage_check(hang, timeout_seconds=0.01)

    assert await verdict(check) == CheckResult(status="fail", detail="timed out")


async def test_a_check_that_raises_fails_with_a_generic_detail() -> None:
    async def broken() -> CheckResult:
        raise OSError("/var/lib/secret.db: disk I/O error")

    result = await verdict(HealthCheck(name="custom", probe=broken))

    assert result == CheckResult(status="fail", detail="check failed")


async def test_audit_check_follows_writability() -> None:
    assert (await verdict(audit_check(lambda: True))).status == "ok"
    assert await verdict(audit_check(lambda: False)) == CheckResult(status="fail", detail="audit log not writable")


async def test_an_audit_probe_stuck_in_a_thread_is_abandoned_at_the_bound() -> None:
    stuck = threading.Event()

    def blocked() -> bool:
        stuck.wait(10)
        return True

    try:
        result = await verdict(audit_check(blocked, timeout_seconds=0.01))
    finally:
        stuck.set()

    assert result == CheckResult(status="fail", detail="timed out")


@pytest.mark.parametrize(
    ("ratio", "status", "detail"),
    [
        (None, "ok", "no daily budget configured"),
        (0.5, "ok", "50% of the daily budget used"),
        (0.8, "warn", "80% of the daily budget used"),
        (1.0, "fail", "100% of the daily budget used"),
    ],
)
async def test_budget_warns_at_the_alert_threshold_and_fails_when_spent(
    ratio: float | None, status: str, detail: str
) -> None:
    assert await verdict(budget_check(lambda: ratio, alert_threshold=0.8)) == CheckResult(
        status=status,  # type: ignore[arg-type]  # parametrized literal
        detail=detail,
    )


async def test_sandbox_with_bubblewrap_is_ok_and_anything_less_warns() -> None:
    assert await verdict(sandbox_check(lambda: "bwrap")) == CheckResult(status="ok", detail="isolation: bwrap")
    assert await verdict(sandbox_check(lambda: "rlimits")) == CheckResult(status="warn", detail="isolation: rlimits")


async def test_a_sandbox_level_that_is_not_a_plain_word_is_not_echoed() -> None:
    result = await verdict(sandbox_check(lambda: "bwrap failed: /usr/bin/bwrap: permission denied"))

    assert result == CheckResult(status="warn", detail="isolation: reduced")


async def test_sessions_warn_near_the_cap() -> None:
    assert await verdict(sessions_check(lambda: 5, 100)) == CheckResult(status="ok", detail="5 of 100 sessions open")
    assert (await verdict(sessions_check(lambda: 95, 100))).status == "warn"


async def test_rate_limiter_check_accepts_sync_and_async_probes() -> None:
    async def reachable() -> bool:
        return True

    assert (await verdict(rate_limiter_check(reachable))).status == "ok"
    assert await verdict(rate_limiter_check(lambda: False)) == CheckResult(
        status="fail", detail="limiter storage unreachable"
    )


async def test_checks_run_concurrently_so_one_slow_check_does_not_add_up() -> None:
    gate = anyio.Event()

    async def waits_for_gate() -> CheckResult:
        await gate.wait()
        return CheckResult(status="ok")

    async def opens_gate() -> CheckResult:
        gate.set()
        return CheckResult(status="ok")

    checks = [HealthCheck(name="a", probe=waits_for_gate), HealthCheck(name="b", probe=opens_gate)]
    with anyio.fail_after(5):
        results = await run_checks(checks)

    assert list(results) == ["a", "b"]


def test_overall_status_is_the_worst_of_the_checks() -> None:
    ok, warn, fail = CheckResult(status="ok"), CheckResult(status="warn"), CheckResult(status="fail")

    assert overall_status({}) == "healthy"
    assert overall_status({"a": ok, "b": ok}) == "healthy"
    assert overall_status({"a": ok, "b": warn}) == "degraded"
    assert overall_status({"a": warn, "b": fail}) == "unhealthy"
