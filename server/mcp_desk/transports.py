"""serve_stdio(app) and serve_http(app): run what `create_app` built; the process owns SIGTERM/SIGINT.

Nothing is built here: the HTTP stack, the sidecar, its checks and gauges all come from the App.
Both drain before they return, so the process exits 0.
"""

from __future__ import annotations

import gc
import socket
import time
from functools import partial
from typing import Any, cast

import anyio
import structlog
import uvicorn
from anyio.abc import TaskStatus
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse
from sse_starlette.sse import AppStatus

from mcp_desk.app import App
from mcp_desk.auth import check_http_security
from mcp_desk.http import ServerWithoutSignals, serve_sidecar
from mcp_desk.lifecycle import stop_on_signals
from mcp_desk.registry import negotiated_version
from mcp_desk.stdin import open_stdin
from mcp_desk.transport_guards import uvicorn_options

log = structlog.get_logger()


GC_GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """After start-up: move every object made so far out of the collector's sight, and collect less often.

    Modules, schemas, models and the app never die; `gc.freeze()` stops each full collection from walking
    them again, and a larger first-generation threshold (10,000 allocations, CPython's default is 700)
    cuts the number of young collections per request. Reference counting still frees almost everything.
    The collector, off while the process started (`mcp_desk.__main__`), is on from here.
    """
    gc.freeze()  # no gc.collect() first: it would cost a stdio client tens of ms before `initialize`
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    gc.enable()


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

    start, opened, release, closed = anyio.Event(), anyio.Event(), anyio.Event(), anyio.Event()

    async def read(stdin: Any) -> None:
        async for item in stdin:
            pending.received(item)
            if not opened.is_set() and not _answerable_before_open(item):
                start.set()
                await opened.wait()  # the first call that needs storage waits for it (messages keep their order)
            await to_server.send(item)
        with anyio.move_on_after(grace):
            await pending.empty.wait()
        to_server.close()

    async def write(stdout: Any, written: anyio.Event) -> None:
        async with stdout:
            async for item in from_server:
                await stdout.send(item)
                start.set()
                pending.answered(item)
        written.set()

    lines = open_stdin()

    def stop() -> None:
        lines.stop()

    async with anyio.create_task_group() as tg:
        await tg.start(partial(stop_on_signals, app.lifecycle, grace_seconds=grace, stop=stop))
        await tg.start(_sidecar, app, app.settings.resolved_health_port("stdio"))
        stdin_file = cast("anyio.AsyncFile[str]", lines)  # the SDK only iterates over it
        # `initialize` is answered before storage, the audit log, the docs index and the sandbox probe open
        # (in the background): a desktop host waits for that answer before it shows the server as started.
        tg.start_soon(_keep_open, app, start, opened, release, closed)
        async with stdio_server(stdin=stdin_file) as (stdin, stdout), anyio.create_task_group() as io:
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
        start.set()
        release.set()
        await closed.wait()
        lines.close()
        log.info("stdio_finished")
        tg.cancel_scope.cancel()


# stdio opens the app at the latest this long after start-up, even before any client message (health readiness).
OPEN_AFTER_SECONDS = 1.0
_BEFORE_OPEN = frozenset({"initialize", "notifications/initialized", "server/discover", "ping"})


def _answerable_before_open(item: object) -> bool:
    """True for the handshake and pings: the messages that need nothing `lifespan` opens."""
    message = getattr(item, "message", None)
    return getattr(message, "method", None) in _BEFORE_OPEN


async def _keep_open(
    app: App, start: anyio.Event, opened: anyio.Event, release: anyio.Event, closed: anyio.Event
) -> None:
    """Open the app (storage, audit, docs index, sandbox probe) at `start`, hold it open until `release`, close it.

    `start` is the first answer written or the first message that needs the app, whichever comes first
    (at the latest `OPEN_AFTER_SECONDS` after start-up): opened any earlier, its threads and the sandbox
    probe's processes compete with answering `initialize` (CPU from spawn to the answer against the bare
    SDK, bench/cold_start --compare: 1.09x and 1.14x when the app opened alongside, a median of 1.06x over
    five runs (1.04-1.19) when it opens after; spawn to the first tools/list answer did not move).
    """
    try:
        with anyio.move_on_after(OPEN_AFTER_SECONDS):
            await start.wait()
        async with app.lifespan():
            settle_heap()
            opened.set()
            await release.wait()
    finally:
        closed.set()


async def _sidecar(app: App, port: int | None, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve the app's /health, /health/live, /health/ready and /metrics on the health port, if one is set."""
    if port is None:
        task_status.started()
        return
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve_sidecar, app.sidecar, app.settings.health_host, port)
        log.info("sidecar_listening", host=app.settings.health_host, port=bound)
        task_status.started()


class _HttpServer(ServerWithoutSignals):
    """uvicorn without signal handlers that settles the heap once the app's lifespan has started."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Run the lifespan and bind (uvicorn), then freeze what start-up made."""
        await super().startup(sockets)
        settle_heap()


async def serve_http(app: App, *, host: str, port: int) -> None:
    """Serve Streamable HTTP until SIGTERM/SIGINT; then drain running calls, close cleanly and return."""
    settings = app.settings
    if app.http is None:
        raise ValueError("serve_http needs an app built with transport='http'")
    check_http_security(settings, auth_configured=app.auth is not None)
    options = {**uvicorn_options(settings), "server_header": False, "access_log": True}
    config = uvicorn.Config(
        app.http,
        host=host,
        port=port,
        loop="none",
        http="httptools",
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=5,
        **options,
    )
    server = _HttpServer(config)

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
