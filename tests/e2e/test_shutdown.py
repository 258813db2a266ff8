"""SIGTERM with 20 tool calls in flight, over real HTTP and real stdio: every call answered, exit 0, nothing lost.

The slow call is real: a diagnostic template (policy file) running `/usr/bin/sleep` in the sandbox runner.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp_types import CallToolResult

from tests.conftest import REPO, error, ok
from tests.e2e.conftest import MCP_DESK, StartHttp, base_env
from tests.e2e.support import add_key, cli, connect

pytestmark = pytest.mark.anyio

IN_FLIGHT = 20
NAP_SECONDS = 3
NAP_POLICY = """
[diagnostics.nap]
description = "Sleeps a few seconds (a slow but real call for shutdown tests)."
program = "/usr/bin/sleep"
argv = ["{seconds}"]
read_only = true
timeout_seconds = 30
max_output_bytes = 1024

[diagnostics.nap.params.seconds]
type = "int"
min = 1
max = 10
description = "How long to sleep."
"""


def slow_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a server whose `run_diagnostic nap` takes a few seconds, 20 at a time."""
    policy = tmp_path / "policy.toml"
    shipped = (REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
    assert "rate_per_minute = 6\n" in shipped
    policy.write_text(shipped.replace("rate_per_minute = 6\n", "rate_per_minute = 1000\n") + NAP_POLICY)
    return {
        "MCP_DESK_POLICY_FILE": str(policy),
        "MCP_DESK_SANDBOX_MODE": "none",
        "MCP_DESK_SANDBOX_MAX_CONCURRENT": str(IN_FLIGHT),
        "MCP_DESK_RATE_LIMIT_RPM": "10000",
        "MCP_DESK_SHUTDOWN_GRACE_SECONDS": "30",
    }


def audit_records(audit: Path) -> list[dict[str, Any]]:
    """Complete records of the audit file (none if it does not exist yet)."""
    if not audit.exists():
        return []
    return [json.loads(line) for line in audit.read_text().splitlines() if line.endswith("}")]


def naps_running(server_pid: int) -> int:
    """How many `sleep` processes descend from the server right now (read from /proc)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        pid = int(text.split(" ", 1)[0])
        names[pid] = text[text.index("(") + 1 : text.rindex(")")]
        parents[pid] = int(text[text.rindex(")") + 2 :].split()[1])

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == server_pid:
                return True
        return False

    return sum(1 for pid, name in names.items() if name == "sleep" and descends(pid))


async def wait_for_naps(server_pid: int, count: int) -> None:
    """Poll /proc until `count` naps are running (the caller puts a deadline around this)."""
    while naps_running(server_pid) < count:  # noqa: ASYNC110  # another process: there is no event to await
        await anyio.sleep(0.05)


def notes_in_database(tmp_path: Path) -> set[str]:
    """Titles of the notes in the SQLite file, read directly."""
    with sqlite3.connect(tmp_path / "data" / "mcp-desk.db") as db:
        return {title for (title,) in db.execute("SELECT title FROM notes")}


def check_audit_after_drain(tmp_path: Path, audit: Path) -> None:
    """The chain verifies and every nap has its result record."""
    verified = cli(tmp_path, "audit", "verify", str(audit))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    results = [
        r for r in audit_records(audit) if r.get("event_type") == "tool_result" and r.get("tool") == "run_diagnostic"
    ]
    assert len(results) == IN_FLIGHT
    assert {r.get("outcome") for r in results} == {"ok"}


async def test_sigterm_over_http_answers_all_20_calls_in_flight_goes_unready_refuses_new_work_and_exits_0(
    start_http: StartHttp, tmp_path: Path
) -> None:
    key = add_key(tmp_path / "keys.txt", "root", "admin")
    server = start_http(MCP_DESK_API_KEYS_FILE=str(tmp_path / "keys.txt"), **slow_env(tmp_path))
    audit = tmp_path / "data" / "audit.jsonl"
    results: list[CallToolResult] = []
    nap = {"name": "nap", "params": {"seconds": NAP_SECONDS}}

    async def call(client: Any) -> None:
        results.append(await client.call_tool("run_diagnostic", nap))

    with anyio.fail_after(90):
        async with (
            connect(server.url, key) as client,
            connect(server.url, key, "2026-07-28") as stateless,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.health_port}") as sidecar,
        ):
            assert (await sidecar.get("/health/ready")).status_code == 200
            ok(await client.call_tool("create_note", {"title": "before the signal", "body": "kept"}))
            async with anyio.create_task_group() as calls:
                for number in range(IN_FLIGHT):
                    calls.start_soon(call, client if number % 2 else stateless)
                await wait_for_naps(server.process.pid, IN_FLIGHT)
                server.process.send_signal(signal.SIGTERM)
                while (await sidecar.get("/health/ready")).status_code == 200:  # noqa: ASYNC110  # the signal is async
                    await anyio.sleep(0.02)
                assert (await sidecar.get("/health/ready")).status_code == 503
                assert len(results) < IN_FLIGHT  # still draining: the naps are running
                refused = error(await client.call_tool("create_note", {"title": "during the drain", "body": "x"}))
                assert refused.startswith("shutting_down:"), refused
            assert len(results) == IN_FLIGHT
            assert [ok(result)["exit_code"] for result in results] == [0] * IN_FLIGHT
        assert await anyio.to_thread.run_sync(server.process.wait) == 0
    assert notes_in_database(tmp_path) == {"before the signal"}
    check_audit_after_drain(tmp_path, audit)


def rpc(request_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


INITIALIZE = rpc(
    0,
    "initialize",
    {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "host", "version": "1"}},
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


async def test_sigterm_over_stdio_answers_all_20_requests_in_flight_and_exits_0(tmp_path: Path) -> None:
    env = base_env(tmp_path, MCP_DESK_STDIO_ROLE="admin", **slow_env(tmp_path))
    audit = tmp_path / "data" / "audit.jsonl"
    process = subprocess.Popen(  # noqa: ASYNC220  # starting it does not block; waits go through threads
        [MCP_DESK, "stdio"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        lines = [INITIALIZE, INITIALIZED]
        lines.append(rpc(1, "tools/call", {"name": "create_note", "arguments": {"title": "stdio", "body": "b"}}))
        nap = {"name": "run_diagnostic", "arguments": {"name": "nap", "params": {"seconds": NAP_SECONDS}}}
        lines += [rpc(100 + number, "tools/call", nap) for number in range(IN_FLIGHT)]
        process.stdin.write(b"".join(lines))
        process.stdin.flush()
        with anyio.fail_after(60):
            await wait_for_naps(process.pid, IN_FLIGHT)
            process.send_signal(signal.SIGTERM)
            # stdin stays open: the signal alone ends the server, after answering.
            out = await anyio.to_thread.run_sync(process.stdout.read)
            assert await anyio.to_thread.run_sync(process.wait) == 0
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
    replies = {reply["id"]: reply for reply in map(json.loads, out.decode().splitlines())}
    assert set(replies) == {0, 1, *range(100, 100 + IN_FLIGHT)}
    for number in range(IN_FLIGHT):
        result = replies[100 + number]["result"]
        assert not result.get("isError"), result
        assert result["structuredContent"]["exit_code"] == 0
    assert notes_in_database(tmp_path) == {"stdio"}
    check_audit_after_drain(tmp_path, audit)
