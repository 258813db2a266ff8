"""Lifecycle: readiness states, in-flight tracking, draining and cancellation after the grace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from mcp_desk.errors import ShuttingDown
from mcp_desk.lifecycle import Lifecycle, State, stop_on_signals

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]


async def test_a_new_lifecycle_is_starting_and_not_ready() -> None:
    lifecycle = Lifecycle()

    assert lifecycle.state is State.STARTING
    assert not lifecycle.ready
    assert lifecycle.accepting


async def test_mark_ready_makes_it_ready_and_drain_makes_it_stopped() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    assert lifecycle.ready

    assert await lifecycle.drain(grace_seconds=1) == 0
    assert lifecycle.state is State.STOPPED
    lifecycle.mark_ready()
    assert lifecycle.state is State.STOPPED


async def test_calls_are_served_while_starting() -> None:
    lifecycle = Lifecycle()

    async with lifecycle.track():
        assert lifecycle.in_flight == 1
    assert lifecycle.in_flight == 0


async def test_new_calls_are_refused_once_draining_begins() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    lifecycle.begin_drain()

    assert lifecycle.state is State.DRAINING
    assert not lifecycle.ready
    with pytest.raises(ShuttingDown, match="shutting down"):
        async with lifecycle.track():
            pytest.fail("a call started while draining")


async def test_drain_waits_for_running_calls_and_refuses_new_ones_meanwhile() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    release = anyio.Event()
    finished: list[int] = []
    drained: list[int] = []

    async def call(n: int) -> None:
        async with lifecycle.track():
            await release.wait()
            finished.append(n)

    async def drain() -> None:
        drained.append(await lifecycle.drain(grace_seconds=30))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(call, n)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(drain)
            await anyio.wait_all_tasks_blocked()

            assert lifecycle.state is State.DRAINING
            assert lifecycle.in_flight == 20
            with pytest.raises(ShuttingDown):
                async with lifecycle.track():
                    pass
            release.set()

    assert sorted(finished) == list(range(20))
    assert drained == [0]
    assert lifecycle.state is State.STOPPED


async def test_calls_still_running_after_the_grace_are_cancelled_with_a_clean_error() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    errors: list[str] = []

    async def stuck() -> None:
        try:
            async with lifecycle.track():
                await anyio.sleep_forever()
        except ShuttingDown as exc:
            errors.append(exc.code)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(stuck)
            await anyio.wait_all_tasks_blocked()
            cancelled = await lifecycle.drain(grace_seconds=0.01)

    assert cancelled == 3
    assert errors == ["shutting_down"] * 3
    assert lifecycle.in_flight == 0


async def test_an_outer_cancellation_is_not_turned_into_shutting_down() -> None:
    lifecycle = Lifecycle()

    with anyio.fail_after(5), anyio.CancelScope() as outer:
        async with lifecycle.track():
            outer.cancel()
            await anyio.sleep_forever()

    assert outer.cancelled_caught
    assert lifecycle.in_flight == 0


async def test_wait_draining_returns_when_the_drain_begins() -> None:
    lifecycle = Lifecycle()
    seen: list[State] = []

    async def watcher() -> None:
        await lifecycle.wait_draining()
        seen.append(lifecycle.state)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher)
            await anyio.wait_all_tasks_blocked()
            lifecycle.begin_drain()
            lifecycle.begin_drain()

    assert seen == [State.DRAINING]
    await lifecycle.wait_draining()


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import anyio, sys
    from mcp_desk.lifecycle import Lifecycle, stop_on_signals
    from mcp_desk.logging import configure_logging

    configure_logging("info", "json")  # structlog's default is stdout, which belongs to the transport

    async def main() -> None:
        lifecycle = Lifecycle()
        release = anyio.Event()
        answered = []

        async def call(n):
            async with lifecycle.track():
                await release.wait()
                answered.append(n)

        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: stop_on_signals(
                lifecycle, grace_seconds=10, stop=tg.cancel_scope.cancel, task_status=task_status))
            for n in range(20):
                tg.start_soon(call, n)
            lifecycle.mark_ready()
            await anyio.wait_all_tasks_blocked()
            print("ready", flush=True)
            await lifecycle.wait_draining()
            sys.stderr.write(f"draining ready={lifecycle.ready}\\n")
            release.set()
        print(f"answered {len(answered)} state {lifecycle.state.value}", flush=True)

    anyio.run(main)
    """
)


def test_sigterm_with_twenty_calls_in_flight_drains_them_all_and_exits_zero() -> None:
    """A real process: the signal is handled by the app (no re-raise), so the exit code is 0."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()

    assert proc.returncode == 0, err
    assert out.strip() == "answered 20 state stopped"
    assert "draining ready=False" in err


async def test_stop_on_signals_stops_after_the_drain() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    stopped: list[State] = []

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: stop_on_signals(
                    lifecycle,
                    grace_seconds=1,
                    stop=lambda: stopped.append(lifecycle.state),
                    signals=(signal.SIGUSR1,),
                    task_status=task_status,
                )
            )
            os.kill(os.getpid(), signal.SIGUSR1)

    assert stopped == [State.STOPPED]
