"""Memory per idle session over Streamable HTTP (handshake era): RSS growth over N sessions.

Each session is opened the way a client opens one (`initialize`, then `notifications/initialized`)
and then left idle; no GET stream is held (pass --get-stream to hold one per session, as the SDK
client does). A warm-up batch is opened and closed first so one-time allocations are not counted.

    python -m bench.session_memory [--sessions 500] [--candidate mcp-desk|baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import LOOPBACK, Target, baseline_target, candidate_target, http_server, proc_rss_kib
from bench.loadgen import HANDSHAKE_VERSION, Connection, build_request, run_loop


def _init_body(i: int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": f"idle-{i}", "version": "1"},
            },
        }
    ).encode()


async def open_sessions(port: int, count: int, api_key: str, get_stream: bool) -> tuple[list[str], list[Any]]:
    """Open `count` sessions over one keep-alive connection; optionally one GET stream each."""
    netloc = f"{LOOPBACK}:{port}"
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    conn = Connection(LOOPBACK, port)
    await conn.open()
    sessions: list[str] = []
    streams: list[Any] = []
    for i in range(count):
        resp = await conn.send(build_request(netloc, "/mcp", "POST", _init_body(i), auth))
        if resp.status != 200:
            raise RuntimeError(f"initialize: HTTP {resp.status} {resp.body[:200]!r}")
        sid = resp.headers[b"mcp-session-id"].decode()
        extra = {**auth, "mcp-session-id": sid, "mcp-protocol-version": HANDSHAKE_VERSION}
        note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        await conn.send(build_request(netloc, "/mcp", "POST", note, extra))
        sessions.append(sid)
        if get_stream:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.write(build_request(netloc, "/mcp", "GET", b"", {**extra, "Accept": "text/event-stream"}))
            await reader.readuntil(b"\r\n\r\n")
            streams.append(writer)
    await conn.close()
    return sessions, streams


async def close_sessions(port: int, sessions: list[str], api_key: str, streams: list[Any]) -> None:
    """DELETE every session and drop the GET streams."""
    netloc = f"{LOOPBACK}:{port}"
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    conn = Connection(LOOPBACK, port)
    await conn.open()
    for sid in sessions:
        extra = {**auth, "mcp-session-id": sid, "mcp-protocol-version": HANDSHAKE_VERSION}
        await conn.send(build_request(netloc, "/mcp", "DELETE", b"", extra))
    await conn.close()
    for writer in streams:
        writer.close()


def measure(target: Target, *, sessions: int, get_stream: bool, log: Any = None) -> dict[str, Any]:
    """RSS before and after opening `sessions` idle sessions on a fresh server."""
    with http_server(target, log) as (proc, port):
        warm, warm_streams = run_loop(open_sessions(port, 50, target.api_key, get_stream))
        run_loop(close_sessions(port, warm, target.api_key, warm_streams))
        time.sleep(0.5)
        before = proc_rss_kib(proc.pid)

        async def hold() -> int:
            opened, streams = await open_sessions(port, sessions, target.api_key, get_stream)
            await asyncio.sleep(1.0)
            rss = proc_rss_kib(proc.pid)
            await close_sessions(port, opened, target.api_key, streams)
            return rss

        after = run_loop(hold())
    return {
        "sessions": sessions,
        "get_stream": get_stream,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_session": round((after - before) / sessions, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure one target and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--get-stream", action="store_true")
    p.add_argument("--candidate", choices=["mcp-desk", "baseline"], default="mcp-desk")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        target = candidate_target(work) if args.candidate == "mcp-desk" else baseline_target(work)
        result = measure(target, sessions=args.sessions, get_stream=args.get_stream)
        print(json.dumps({target.name: result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
