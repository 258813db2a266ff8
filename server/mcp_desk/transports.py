"""run_stdio(app) and run_http(app): the process owns SIGTERM/SIGINT and drains before it exits 0."""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, cast

import anyio
import structlog
import uvicorn
from anyio.abc import TaskStatus
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_desk.app import VERSION, App
from mcp_desk.auth import check_http_security, protect
from mcp_desk.auth.failures import ReportAuthFailures
from mcp_desk.health import sessions_check
from mcp_desk.http import ServerWithoutSignals, serve_sidecar, sidecar_app
from mcp_desk.lifecycle import stop_on_signals
from mcp_desk.registry import negotiated_version
from mcp_desk.sessions import session_manager
from mcp_desk.transport_guards import harden, uvicorn_options

log = structlog.get_logger()


GC_GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """After start-up: move every object made so far out of the collector's sight, and collect less often.

    Modules, schemas, models and the app never die; `gc.freeze()` stops each full collection from walking
    them again, and a larger first-generation threshold (10,000 allocations, CPython's default is 700)
    cuts the number of young collections per request. Reference counting still frees almost everything.
    """
    gc.freeze()  # no gc.collect() first: it would cost a stdio client tens of ms before `initialize`
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class _StdinLines:
    """stdin as async lines read without a worker thread, so a signal can stop the server while stdin stays open.

    (The SDK's default reader blocks a thread in `readline()`, which no cancellation can interrupt.)
    The wire moves to a private descriptor and fd 0 is pointed at /dev/null, so nothing else can read it.
    """

    def __init__(self) -> None:
        self.fd = os.dup(0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        mode = os.fstat(self.fd).st_mode
        self.pollable = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        if self.pollable:
            os.set_blocking(self.fd, False)
        self.buffer = b""
        self.eof = False
        self._waiting = anyio.CancelScope()

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self._next_line()
            try:
                return line.decode("utf-8")
            except UnicodeDecodeError:
                # JSON on the wire is UTF-8 (RFC 8259). Replacing the bad bytes would store U+FFFD in place of
                # what the client sent; the line is dropped instead, like any other unparsable line.
                log.warning("stdin_line_not_utf8", length=len(line))

    async def _next_line(self) -> bytes:
        while b"\n" not in self.buffer and not self.eof:
            if self.pollable and not await self._readable():
                break
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            self.eof = not chunk
            self.buffer += chunk
        if not self.buffer:
            raise StopAsyncIteration
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    async def _readable(self) -> bool:
        """Wait for input; False once `stop()` was called."""
        with anyio.CancelScope() as self._waiting:
            await anyio.wait_readable(self.fd)
        return not self.eof

    def stop(self) -> None:
        """End the iteration (a signal): complete lines already read are still served, the rest is not read."""
        self.eof = True
        self.buffer = self.buffer[: self.buffer.rfind(b"\n") + 1]
        self._waiting.cancel()

    def close(self) -> None:
        os.close(self.fd)


class _Pending:
    """Ids of requests read from the client that have no response written yet."""

    def __init__(self) -> None:
        self.ids: set[Any] = set()
        self.empty = anyio.Event()
        self.empty.set()

    def received(self, item: object) -> None:
        if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCRequest):
            self.ids.add(item.message.id)
            self.empty = anyio.Event() if self.empty.is_set() else self.empty

    def answered(self, item: object) -> None:
        if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCResponse | JSONRPCError):
            self.ids.discard(item.message.id)
            if not self.ids:
                self.empty.set()


async def serve_stdio(app: App) -> None:
    """Serve one client on stdin/stdout until it closes stdin or a signal arrives.

    Either way, requests already read are answered (within the grace period) before the process exits.
    """
    grace = app.settings.shutdown_grace_seconds
    pending = _Pending()
    to_server, server_in = anyio.create_memory_object_stream[Any](64)
    server_out, from_server = anyio.create_memory_object_stream[Any](64)

    async def read(stdin: Any) -> None:
        async for item in stdin:
            pending.received(item)
            await to_server.send(item)
        with anyio.move_on_after(grace):
            await pending.empty.wait()
        to_server.close()

    async def write(stdout: Any, written: anyio.Event) -> None:
        async with stdout:
            async for item in from_server:
                await stdout.send(item)
                pending.answered(item)
        written.set()

    lines = _StdinLines()

    def stop() -> None:
        lines.stop()

    async with anyio.create_task_group() as tg:
        await tg.start(partial(stop_on_signals, app.lifecycle, grace_seconds=grace, stop=stop))
        app.gauges.append(app.refresh_gauges)
        await tg.start(_sidecar, app, app.settings.resolved_health_port("stdio"))
        stdin_file = cast("anyio.AsyncFile[str]", lines)  # the SDK only iterates over it
        async with app.lifespan(), stdio_server(stdin=stdin_file) as (stdin, stdout), anyio.create_task_group() as io:
            settle_heap()
            written = anyio.Event()
            io.start_soon(read, stdin)
            io.start_soon(write, stdout, written)
            connected = time.monotonic()
            await app.server.run(server_in, server_out, app.server.create_initialization_options())
            version = negotiated_version(app.server.middleware)
            app.metrics.observe_session(time.monotonic() - connected, "stdio", protocol_version=version)
            server_out.close()
            await written.wait()
            io.cancel_scope.cancel()
        lines.close()
        log.info("stdio_finished")
        tg.cancel_scope.cancel()


def http_app(app: App) -> ASGIApp:
    """The hardened Streamable HTTP endpoint at /mcp; its lifespan opens the app and the session manager."""
    settings = app.settings
    manager = session_manager(
        app.server,
        max_sessions=settings.max_sessions,
        max_sessions_per_principal=settings.max_sessions_per_principal,
        idle_seconds=settings.session_idle_seconds,
        max_request_body_bytes=settings.max_request_body_bytes,
        on_session_end=lambda seconds, version: app.metrics.observe_session(seconds, "http", protocol_version=version),
    )
    app.checks.append(sessions_check(lambda: manager.open_sessions, settings.max_sessions))
    endpoint: Any = StreamableHTTPASGIApp(manager)
    if app.auth is not None:
        endpoint = ReportAuthFailures(protect(endpoint, app.auth), on_failure=app.auth_failed)
    routes: list[Any] = [Route("/mcp", endpoint=endpoint)]
    if app.auth is not None:
        routes.extend(app.auth.metadata_routes)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with app.lifespan(), manager.run():
            settle_heap()
            yield

    async def refresh() -> None:
        app.metrics.set_sessions(manager.open_sessions)
        await app.refresh_gauges()

    app.gauges.append(refresh)
    return harden(Starlette(routes=routes, lifespan=lifespan), settings)


async def _sidecar(app: App, port: int | None, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve /health, /health/live, /health/ready and /metrics on the health port, if one is set."""
    if port is None:
        task_status.started()
        return

    async def on_scrape() -> None:
        for refresh in app.gauges:
            await refresh()

    sidecar = sidecar_app(
        metrics=app.metrics, lifecycle=app.lifecycle, checks=app.checks, version=VERSION, on_scrape=on_scrape
    )
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve_sidecar, sidecar, app.settings.health_host, port)
        log.info("sidecar_listening", host=app.settings.health_host, port=bound)
        task_status.started()


async def serve_http(app: App, *, host: str, port: int) -> None:
    """Serve Streamable HTTP until SIGTERM/SIGINT; then drain running calls, close cleanly and return."""
    settings = app.settings
    check_http_security(settings, auth_configured=app.auth is not None)
    options = {**uvicorn_options(settings), "server_header": False, "access_log": True}
    config = uvicorn.Config(
        http_app(app),
        host=host,
        port=port,
        loop="none",
        http="httptools",
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=5,
        **options,
    )
    server = ServerWithoutSignals(config)

    def stop() -> None:
        # Runs after the drain: readiness went 503 and new calls were refused at the signal, running calls
        # had the grace period, and their responses flowed because uvicorn kept serving until now.
        server.should_exit = True
        AppStatus.should_exit = True  # sse-starlette: close the remaining (idle) event streams

    async with anyio.create_task_group() as tg:
        await tg.start(
            partial(stop_on_signals, app.lifecycle, grace_seconds=settings.shutdown_grace_seconds, stop=stop)
        )
        await tg.start(_sidecar, app, settings.resolved_health_port("http"))
        await server.serve()
        tg.cancel_scope.cancel()
