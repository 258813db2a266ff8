"""Closed-loop load generator for MCP over Streamable HTTP, run in its own process.

N clients, each on one keep-alive connection (and, in the handshake era, one session), send a
tool call, wait for the answer, and send the next. Requests are pre-built bytes written to a raw
asyncio stream (uvloop when available): on a 2-core machine the generator must cost far less than
the server, so it speaks just enough HTTP/1.1 (Content-Length and chunked bodies, keep-alive) and
checks each answer without decoding its JSON.

    python -m bench.loadgen --url http://127.0.0.1:8123/mcp --era handshake --concurrency 32 \
        --duration 5 --tool create_note [--api-key KEY]

Prints one JSON object: calls, errors, throughput, latency percentiles (ms) and the generator's own
CPU use (`gen_cpu_ratio` near 1.0 means one core was saturated: the generator was the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
ENVELOPE_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "mcp-desk-loadgen", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
LIST_LIMIT = 20  # list_notes: the 20 newest notes on both sides
NOTE_BODY = (
    "Customer reports the VPN client drops every few minutes on hotel Wi-Fi. Switched transport to TCP 443, "
    "disabled Wi-Fi power saving; stable for 20 minutes. Follow up tomorrow."
)


class ProtocolError(Exception):
    """The server answered something the generator cannot use."""


@dataclass(slots=True)
class Response:
    """One HTTP response, body fully read."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes


class Connection:
    """A keep-alive HTTP/1.1 connection that sends pre-built requests."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """(Re)connect."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None

    async def send(self, raw: bytes) -> Response:
        """Write one request and read its whole response."""
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None
        assert self.reader is not None
        self.writer.write(raw)
        reader = self.reader
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(b":")
                headers[key.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return Response(status, headers, body)


def build_request(netloc: str, path: str, method: str, payload: bytes, extra: dict[str, str]) -> bytes:
    """One HTTP request as bytes."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {netloc}", "Accept: application/json, text/event-stream"]
    if payload or method == "POST":
        head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
    head += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def call_body(tool: str, arguments: dict[str, Any], modern: bool) -> tuple[bytes, bytes]:
    """A tools/call JSON-RPC body split around its id: prefix + str(id) + suffix."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if modern:
        params["_meta"] = ENVELOPE_META
    rest = json.dumps({"method": "tools/call", "params": params}, separators=(",", ":"))
    return b'{"jsonrpc":"2.0","id":', b"," + rest[1:].encode()


def is_success(resp: Response) -> bool:
    """200 and a JSON-RPC result that is not a tool error."""
    body = resp.body
    return (
        resp.status == 200 and b'"result"' in body and b'"isError":true' not in body and b'"isError": true' not in body
    )


@dataclass
class Stats:
    """What all clients measured inside the window."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    all_calls: int = 0
    first_error: str = ""
    setup_s: float = 0.0


class Client:
    """One closed-loop client: one connection, one session (handshake era)."""

    def __init__(self, args: argparse.Namespace, index: int) -> None:
        url = urlsplit(args.url)
        self.netloc = url.netloc
        self.path = url.path or "/"
        self.conn = Connection(url.hostname or "127.0.0.1", url.port or 80)
        self.args = args
        self.index = index
        self.modern = args.era == "modern"
        self.extra: dict[str, str] = {}
        if args.api_key:
            self.extra["Authorization"] = f"Bearer {args.api_key}"
        self.session: str | None = None
        self.next_id = 1
        self.prefix = b""
        self.suffix = b""
        self.head = b""

    def _post(self, payload: bytes, extra: dict[str, str]) -> bytes:
        return build_request(self.netloc, self.path, "POST", payload, {**self.extra, **extra})

    async def setup(self) -> None:
        """Open the connection, do the handshake if any, and pre-build the call request."""
        await self.conn.open()
        extra: dict[str, str] = {}
        if self.modern:
            extra = {"mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call"}
        else:
            init = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": HANDSHAKE_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "mcp-desk-loadgen", "version": "1"},
                    },
                }
            ).encode()
            resp = await self.conn.send(self._post(init, {}))
            if resp.status != 200 or b"mcp-session-id" not in resp.headers:
                raise ProtocolError(f"initialize: HTTP {resp.status} {resp.body[:200]!r}")
            self.session = resp.headers[b"mcp-session-id"].decode()
            extra = {"mcp-session-id": self.session, "mcp-protocol-version": HANDSHAKE_VERSION}
            note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
            resp = await self.conn.send(self._post(note, extra))
            if resp.status not in (200, 202):
                raise ProtocolError(f"notifications/initialized: HTTP {resp.status}")
        self.call_extra = extra
        tool, arguments = self.args.tool, await self._arguments(extra)
        if self.modern:
            extra = {**extra, "mcp-name": tool}
        self.prefix, self.suffix = call_body(tool, arguments, self.modern)
        self.head_extra = extra

    async def _arguments(self, extra: dict[str, str]) -> dict[str, Any]:
        title = f"Load test note {self.index}"
        create = {"title": title, "body": NOTE_BODY, "tags": ["bench", "vpn"]}
        if self.args.tool == "create_note":
            return create
        if self.args.tool not in ("get_note", "list_notes"):
            raise ProtocolError(f"unknown tool {self.args.tool}")
        prefix, suffix = call_body("create_note", create, self.modern)
        hdr = {**extra, "mcp-name": "create_note"} if self.modern else extra
        resp = await self.conn.send(self._post(prefix + b"0" + suffix, hdr))
        if not is_success(resp):
            raise ProtocolError(f"create_note for get_note: HTTP {resp.status} {resp.body[:300]!r}")
        text = resp.body.decode()
        start = text.index("{", text.index("data:")) if text.lstrip().startswith("event") else 0
        message = json.loads(text[start:].strip().splitlines()[0] if start else text)
        if self.args.tool == "list_notes":
            return {"limit": LIST_LIMIT}  # the newest notes, whatever the other clients created
        return {"note_id": message["result"]["structuredContent"]["id"]}

    def request(self) -> bytes:
        """The next call, with a fresh JSON-RPC id."""
        self.next_id += 1
        payload = self.prefix + str(self.next_id).encode() + self.suffix
        return self._post(payload, self.head_extra)

    async def teardown(self) -> None:
        """End the session (so idle sessions do not pile up across runs) and close."""
        if self.session is not None:
            try:
                raw = build_request(self.netloc, self.path, "DELETE", b"", {**self.extra, **self.call_extra})
                await asyncio.wait_for(self.conn.send(raw), 5)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                pass
        await self.conn.close()


async def run_client(client: Client, stats: Stats, window: list[float], stop: asyncio.Event, budget: list[int]) -> None:
    """Send calls back to back until the window closes or the call budget is spent."""
    clock = time.perf_counter_ns
    lat = stats.latencies_ns
    start_ns, end_ns = int(window[0] * 1e9), int(window[1] * 1e9)
    while not stop.is_set():
        raw = client.request()
        t0 = clock()
        try:
            resp = await client.conn.send(raw)
            ok = is_success(resp)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            ok, resp = False, Response(0, {}, repr(exc).encode())
            await client.conn.close()
        t1 = clock()
        stats.all_calls += 1
        if t0 < start_ns:
            continue
        if t1 > end_ns:
            stop.set()
            break
        if ok:
            lat.append(t1 - t0)
        else:
            stats.errors += 1
            if not stats.first_error:
                stats.first_error = f"HTTP {resp.status}: {resp.body[:300]!r}"
        budget[0] -= 1
        if budget[0] <= 0:
            stop.set()


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank] / 1e6


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Set up every client, run the window, and summarise."""
    clients = [Client(args, i) for i in range(args.concurrency)]
    stats = Stats()
    t_setup = time.perf_counter()
    sem = asyncio.Semaphore(16)

    async def setup(c: Client) -> None:
        async with sem:
            await c.setup()

    await asyncio.gather(*(setup(c) for c in clients))
    stats.setup_s = time.perf_counter() - t_setup
    now = time.perf_counter()
    window = [now + args.warmup, now + args.warmup + args.duration]
    stop = asyncio.Event()
    budget = [args.max_calls]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    await asyncio.gather(*(run_client(c, stats, window, stop, budget) for c in clients))
    wall1 = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    measured_end = min(wall1, window[1])
    elapsed = max(1e-9, measured_end - window[0])
    await asyncio.gather(*(c.teardown() for c in clients))
    lat = sorted(stats.latencies_ns)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "era": args.era,
        "tool": args.tool,
        "concurrency": args.concurrency,
        "calls": len(lat),
        "calls_all": stats.all_calls,
        "errors": stats.errors,
        "first_error": stats.first_error,
        "elapsed_s": round(elapsed, 3),
        "throughput": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50), 3),
        "p90_ms": round(percentile(lat, 90), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "max_ms": round(lat[-1] / 1e6, 3) if lat else float("nan"),
        "gen_cpu_s": round(cpu, 3),
        "gen_cpu_ratio": round(cpu / max(1e-9, wall1 - wall0), 3),
        "gen_cpu_us_per_call": round(cpu / max(1, len(lat)) * 1e6, 1),
        "setup_s": round(stats.setup_s, 3),
    }


def run_loop(coro: Coroutine[Any, Any, T], *, uvloop_ok: bool = True) -> T:
    """Run a coroutine on uvloop when installed (cheaper per request), else asyncio."""
    if uvloop_ok:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Closed-loop MCP load generator (Streamable HTTP).")
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/mcp (loopback only)")
    p.add_argument("--era", choices=["handshake", "modern"], default="handshake")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds (after warm-up)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured calls first")
    p.add_argument("--max-calls", type=int, default=200_000, help="stop the window early after this many calls")
    p.add_argument("--tool", choices=["create_note", "get_note", "list_notes"], default="create_note")
    p.add_argument("--api-key", default="", help="sent as Authorization: Bearer KEY")
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args(argv)
    host = urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        p.error("the load generator only targets loopback")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run and print the JSON summary."""
    args = parse_args(argv)
    result = run_loop(main_async(args), uvloop_ok=not args.no_uvloop)
    print(json.dumps(result))
    return 0 if result["calls"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
