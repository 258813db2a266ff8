"""Security alerts: log line, metric hook, non-blocking webhook, and denial-burst detection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import anyio
import pytest
from structlog.testing import capture_logs

from mcp_desk.errors import ConfigError
from mcp_desk.policy.alerts import Alerter, post_json
from tests.clock import ManualClock

pytestmark = pytest.mark.anyio


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []
    arrived: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()
        type(self).arrived.set()

    def log_message(self, format: str, *args: object) -> None:
        """Silence the stdlib access log."""


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Receiver]]]:
    """A real HTTP receiver on 127.0.0.1 and a free port."""
    handler = type("Receiver", (_Receiver,), {"bodies": [], "arrived": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_alert_logs_an_error_and_calls_the_metric_hook() -> None:
    kinds: list[str] = []
    alerter = Alerter(on_alert=kinds.append)
    with capture_logs() as logs:
        alerter.alert("auth_failed", transport="http")
    assert kinds == ["auth_failed"]
    assert logs == [{"event": "security_alert", "kind": "auth_failed", "transport": "http", "log_level": "error"}]


def test_a_broken_metric_hook_does_not_break_the_alert() -> None:
    def broken(kind: str) -> None:
        raise RuntimeError(kind)

    with capture_logs() as logs:
        Alerter(on_alert=broken).alert("path_blocked")
    assert [entry["event"] for entry in logs] == ["security_alert", "alert_hook_failed"]


def test_a_burst_of_denials_raises_one_alert_per_window() -> None:
    clock = ManualClock()
    kinds: list[str] = []
    alerter = Alerter(on_alert=kinds.append, clock=clock, burst_threshold=3, burst_window_seconds=60)
    fired = []
    for _ in range(6):
        fired.append(alerter.record_denial("mallory"))
        clock.now += 1
    assert fired == [False, False, True, False, False, False]
    assert alerter.record_denial("alice") is False
    clock.now += 61
    assert [alerter.record_denial("mallory") for _ in range(3)] == [False, False, True]
    assert kinds == ["permission_denied_burst", "permission_denied_burst"]


def test_denials_spread_out_over_time_are_not_a_burst() -> None:
    clock = ManualClock()
    alerter = Alerter(clock=clock, burst_threshold=3, burst_window_seconds=10)
    results = []
    for _ in range(10):
        results.append(alerter.record_denial("slow"))
        clock.now += 6
    assert not any(results)


def test_tracked_principals_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mcp_desk.policy.alerts.MAX_TRACKED_PRINCIPALS", 5)
    alerter = Alerter(clock=ManualClock())
    for n in range(50):
        alerter.record_denial(f"p{n}")
    assert len(alerter._denials) == 5


def test_a_non_http_webhook_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="MCP_DESK_ALERT_WEBHOOK_URL"):
        Alerter(webhook_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="http"):
        post_json("file:///etc/passwd", b"{}", 1.0)


async def test_the_webhook_receives_a_json_post(webhook: tuple[str, type[_Receiver]]) -> None:
    url, receiver = webhook
    alerter = Alerter(webhook_url=url)
    async with alerter.running():
        alerter.alert("auth_failed", transport="http")
        with anyio.fail_after(5):
            await anyio.to_thread.run_sync(receiver.arrived.wait)
            await alerter.drain()
    payload = json.loads(receiver.bodies[0])
    assert (payload["kind"], payload["transport"], payload["source"]) == ("auth_failed", "http", "mcp-desk")
    assert (alerter.sent, alerter.failed, alerter.pending()) == (1, 0, 0)


async def test_a_stuck_webhook_never_blocks_alerts_and_drops_are_counted() -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck_poster(url: str, body: bytes, timeout: float) -> int:
        started.set()
        release.wait(timeout=5)
        return 200

    alerter = Alerter(webhook_url="http://127.0.0.1:9/hook", queue_size=2, poster=stuck_poster)
    async with alerter.running():
        alerter.alert("a")
        with anyio.fail_after(5):
            await anyio.to_thread.run_sync(started.wait)
        for _ in range(5):
            alerter.alert("b")
        assert (alerter.pending(), alerter.dropped) == (2, 3)
        release.set()
        with anyio.fail_after(5):
            await alerter.drain()
    assert (alerter.sent, alerter.dropped) == (3, 3)


async def test_webhook_failures_are_counted_not_raised() -> None:
    statuses = iter([500])

    def poster(url: str, body: bytes, timeout: float) -> int:
        status = next(statuses, None)
        if status is None:
            raise OSError("connection refused")
        return status

    alerter = Alerter(webhook_url="http://127.0.0.1:9/hook", poster=poster)
    async with alerter.running():
        alerter.alert("a")
        alerter.alert("b")
        with anyio.fail_after(5):
            await alerter.drain()
    assert (alerter.sent, alerter.failed) == (0, 2)


async def test_a_real_post_to_a_closed_port_fails_within_the_timeout() -> None:
    with anyio.fail_after(10), pytest.raises(OSError, match="refused"):
        await anyio.to_thread.run_sync(post_json, "http://127.0.0.1:9/hook", b"{}", 2.0)
