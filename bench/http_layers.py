"""CPU per request of what mcp-desk puts around the SDK on the HTTP path, measured in-process.

No sockets and no load generator: pre-built ASGI messages go through the app's own pieces, one
request at a time, and `time.process_time()` (every thread) is divided by the request count; the
median of interleaved rounds is kept. What it measures:

- `bare`: a Starlette route to an endpoint that answers a fixed JSON body (the floor);
- each transport guard of `transport_guards.harden` alone around `bare` (its marginal cost), and all
  of them in their order;
- authentication (`ReportAuthFailures(protect(...))` with an API key from a real key file) on top
  of the guards;
- the shaping of a `list_notes` result of 20 notes into what the SDK writes: the registry's wire
  dict (`ok_result`) against the same result built as a `CallToolResult` model first, each followed
  by the SDK's own validation and dump for the 2026-07-28 era.

    python -m bench.http_layers [--requests 3000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import orjson
from mcp_types.methods import serialize_server_result
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.common import median
from mcp_desk import transport_guards as guards
from mcp_desk.auth import http_auth, protect
from mcp_desk.auth.failures import ReportAuthFailures
from mcp_desk.config import Settings, load_settings
from mcp_desk.policy.keys import KeyStore, generate_key, key_line
from mcp_desk.registry import ok_result

BODY = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_notes","arguments":{"limit":20}}}'
ANSWER = b'{"jsonrpc":"2.0","id":7,"result":{"content":[]}}'
MODERN = "2026-07-28"


class Fixed:
    """The endpoint: reads the body, answers a fixed JSON body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 200 once the whole body arrived."""
        message = await receive()
        if message.get("body") != BODY:
            raise RuntimeError("the body did not reach the endpoint intact")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": ANSWER})


def route(endpoint: ASGIApp) -> Starlette:
    """`endpoint` at /mcp, as app.py mounts the SDK's."""
    return Starlette(routes=[Route("/mcp", endpoint=endpoint)])


def headers(key: str) -> list[tuple[bytes, bytes]]:
    """The headers of a 2026-07-28 tools/call as the SDK client sends them."""
    values = {
        "host": "127.0.0.1:8000",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {key}",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "list_notes",
        "content-length": str(len(BODY)),
    }
    return [(k.encode(), v.encode()) for k, v in values.items()]


async def one(app: ASGIApp, raw_headers: list[tuple[bytes, bytes]]) -> int:
    """One POST through `app`; its status."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/mcp", "raw_path": b"/mcp", "query_string": b"", "root_path": "", "headers": list(raw_headers),
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    pending: list[Message] = [{"type": "http.request", "body": BODY, "more_body": False}]
    status = 0

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def cpu_per_request(app: ASGIApp, raw_headers: list[tuple[bytes, bytes]], requests: int) -> float:
    """CPU µs per request through `app` (after a warm-up that must answer 200)."""
    for _ in range(100):
        if (status := await one(app, raw_headers)) != 200:
            raise RuntimeError(f"the stack answered {status}")
    started = time.process_time()
    for _ in range(requests):
        await one(app, raw_headers)
    return (time.process_time() - started) / requests * 1e6


def stacks(settings: Settings, store: KeyStore) -> dict[str, ASGIApp]:
    """Every stack measured, by name; `guards` and `guards+auth` are what app.py builds around the SDK."""
    auth = http_auth(settings, key_store=store)
    if auth is None:
        raise RuntimeError("no API-key authentication was configured")

    async def refused(reason: str) -> None:
        raise RuntimeError(f"authentication refused the bench key: {reason}")

    bare = route(Fixed())
    return {
        "bare": bare,
        "QueryCredentialGuard": guards.QueryCredentialGuard(bare),
        "HostGuard": guards.HostGuard(bare, allowed_hosts=settings.allowed_hosts),
        "OriginGuard": guards.OriginGuard(bare, allowed_origins=settings.allowed_origins),
        "ConcurrencyLimit": guards.ConcurrencyLimit(bare, limit=settings.max_concurrent_requests),
        "BodyGuard": guards.BodyGuard(
            bare, max_bytes=settings.max_request_body_bytes, timeout_seconds=settings.request_body_timeout_seconds
        ),
        "EnvelopeGuard": guards.EnvelopeGuard(bare),
        "guards": guards.harden(bare, settings),
        "guards+auth": guards.harden(route(ReportAuthFailures(protect(Fixed(), auth), on_failure=refused)), settings),
    }


def list_notes_result() -> dict[str, Any]:
    """A list_notes page of 20 notes, as the guards hand it back to the registry."""
    items = [
        {
            "id": f"n_{i:026x}",
            "title": f"Load test note {i}",
            "tags": ["bench", "vpn"],
            "version": 1,
            "updated_at": "2026-12-06T20:00:00.123456Z",
            "snippet": None,
        }
        for i in range(20)
    ]
    return {"items": items, "next_cursor": "eyJ1IjoiMjAyNi0xMi0wNlQyMDowMDowMC4xMjM0NTZaIiwicyI6MTIzfQ"}


def as_model(structured: dict[str, Any]) -> dict[str, Any]:
    """The same result built as a CallToolResult, then dumped the way the SDK's runner dumps a model."""
    text = types.TextContent(type="text", text=orjson.dumps(structured).decode())
    result = types.CallToolResult(content=[text], structured_content=structured)
    return serialize_server_result(
        "tools/call", MODERN, result.model_dump(by_alias=True, mode="json", exclude_none=True)
    )


def as_wire(structured: dict[str, Any]) -> dict[str, Any]:
    """The registry's wire dict, copied and validated the way the SDK's runner treats a dict."""
    return serialize_server_result("tools/call", MODERN, dict(ok_result(structured)))


def cpu_per_shaping(shape: Callable[[dict[str, Any]], dict[str, Any]], calls: int) -> float:
    """CPU µs per result shaped by `shape`."""
    structured = list_notes_result()
    started = time.process_time()
    for _ in range(calls):
        shape(structured)
    return (time.process_time() - started) / calls * 1e6


async def measure(requests: int, rounds: int) -> dict[str, float]:
    """Medians over interleaved rounds, in µs of CPU per request (marginal over `bare` for the layers)."""
    with tempfile.TemporaryDirectory(prefix="mcp-desk-http-layers-") as tmp:
        key = generate_key()
        keys_file = Path(tmp) / "api-keys.txt"
        keys_file.write_text(key_line(key, principal="bench", role="admin") + "\n", encoding="utf-8")
        settings = load_settings(env_file=None, storage_path=Path(tmp), api_keys_file=keys_file)
        apps = stacks(settings, KeyStore.load(keys_file))
        raw_headers = headers(key)
        samples: dict[str, list[float]] = {name: [] for name in apps}
        shaping: dict[str, list[float]] = {"result as CallToolResult": [], "result as wire dict": []}
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(await cpu_per_request(app, raw_headers, requests))
            shaping["result as CallToolResult"].append(cpu_per_shaping(as_model, requests))
            shaping["result as wire dict"].append(cpu_per_shaping(as_wire, requests))
    floor = median(samples["bare"])
    layers = {name: median(v) - (0.0 if name == "bare" else floor) for name, v in samples.items()}
    return {**layers, **{name: median(v) for name, v in shaping.items()}}


Runner = Callable[[], Awaitable[dict[str, float]]]


def main(argv: list[str] | None = None) -> int:
    """Measure and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = anyio.run(measure, args.requests, args.rounds, backend_options={"use_uvloop": True})
    if args.json:
        print(json.dumps({k: round(v, 2) for k, v in result.items()}))
        return 0
    print("| layer | CPU µs per request |\n|---|---:|")
    for name, value in result.items():
        print(f"| {name} | {value:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
