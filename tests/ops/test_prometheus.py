"""/metrics against the real tools: `promtool check metrics`, and a real Prometheus scraping the sidecar.

Prometheus comes from Debian (`tests/ops/install_prometheus.sh` installs it when missing and root).
Where it cannot be installed the tests skip with the reason, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp_desk.http import serve_sidecar, sidecar_app
from mcp_desk.lifecycle import Lifecycle
from mcp_desk.metrics import Metrics

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INSTALLER = Path(__file__).with_name("install_prometheus.sh")
TOOLS = ["create_note", "get_note", "list_tickets"]
# The first scrape lands about 5.5 s after Prometheus starts, even with a 1 s interval.
FIRST_SCRAPE_BOUND_SECONDS = 30


@pytest.fixture(scope="module")
def prometheus_tools() -> tuple[str, str]:
    """Paths of prometheus and promtool, installing them from Debian if needed."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        done = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            reason = f"Prometheus not available: {done.stderr.strip() or 'installer failed'}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus is not None
    assert promtool is not None
    return prometheus, promtool


def traffic(metrics: Metrics) -> None:
    """Allowed, denied, invalid and rate-limited calls, as the guards would record them."""
    metrics.record_call("create_note", "ok", 0.004, "http")
    metrics.record_call("create_note", "ok", 0.006, "http")
    metrics.record_call("get_note", "ok", 0.0008, "http")
    metrics.record_call("create_note", "denied", 0.0002, "http", "permission_denied")
    metrics.permission_denied("create_note")
    metrics.record_call("get_note", "invalid", 0.0003, "http", "invalid_input")
    metrics.record_call("list_tickets", "rate_limited", 0.0001, "http", "rate_limited")
    metrics.rate_limited("requests")


@pytest.fixture
async def sidecar_port() -> AsyncIterator[int]:
    """A real uvicorn sidecar on 127.0.0.1 with some recorded traffic."""
    metrics = Metrics(version="0.1.0", tools=TOOLS, transports=["http"], diagnostics=["disk_usage"])
    traffic(metrics)
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    app = sidecar_app(metrics=metrics, lifecycle=lifecycle, checks=[], version="0.1.0")
    async with anyio.create_task_group() as tg:
        yield await tg.start(serve_sidecar, app, "127.0.0.1", 0)
        tg.cancel_scope.cancel()


async def test_promtool_accepts_the_real_metrics_output(
    prometheus_tools: tuple[str, str], sidecar_port: int, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(f"http://127.0.0.1:{sidecar_port}/metrics")).content

    with anyio.fail_after(60):
        done = await anyio.run_process([prometheus_tools[1], "check", "metrics"], input=exposition, check=False)

    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert done.stdout.strip() == b""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def prometheus(prometheus_tools: tuple[str, str], tmp_path: Path, sidecar_port: int) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping the sidecar every second; yields its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: mcp-desk\n    static_configs:\n      - targets: ['127.0.0.1:{sidecar_port}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prometheus_tools[0],
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def query_until_present(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    """Poll the query API (Prometheus is another process) until the series appear, within the bound."""
    with anyio.fail_after(FIRST_SCRAPE_BOUND_SECONDS):
        while True:
            try:
                response = await client.get(f"{base}/api/v1/query", params={"query": promql})
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                result: list[dict[str, Any]] = response.json()["data"]["result"]
                if result:
                    return result
            await anyio.sleep(0.5)


async def test_a_real_prometheus_scrapes_the_sidecar_and_answers_for_tool_calls(prometheus: str) -> None:
    async with httpx.AsyncClient() as client:
        calls = await query_until_present(client, prometheus, 'mcp_desk_tool_calls_total{job="mcp-desk"}')
        up = await query_until_present(client, prometheus, 'up{job="mcp-desk"}')

    by_labels = {(r["metric"]["tool"], r["metric"]["outcome"]): float(r["value"][1]) for r in calls}
    assert by_labels[("create_note", "ok")] == 2.0
    assert by_labels[("create_note", "denied")] == 1.0
    assert by_labels[("get_note", "invalid")] == 1.0
    assert by_labels[("list_tickets", "rate_limited")] == 1.0
    assert by_labels[("list_tickets", "budget")] == 0.0, "known label sets exist before any call"
    assert len(by_labels) == len(TOOLS) * 6
    assert [float(r["value"][1]) for r in up] == [1.0]
