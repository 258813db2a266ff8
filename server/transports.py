"""run_stdio(app) and run_http(app): the process owns SIGTERM/SIGINT and drains before it exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import AsyncIterator, Generator
from typing import Any, cast

import anyio
import structlog
import uvicorn
from anyio.abc import TaskStatus
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse
from starlette.applications import Starlette
from starlette.routing import Route

from server.app import App

log = structlog.get_logger()


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: it re-raises SIGTERM after shutdown (exit 143), we exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _on_signal(stop: Any, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Own SIGTERM/SIGINT from the start: the first one runs `stop` (drain, then exit 0)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            await stop()
            return


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
        while b"\n" not in self.buffer and not self.eof:
            if self.pollable:
                with anyio.CancelScope() as self._waiting:
                    await anyio.wait_readable(self.fd)
                if self.eof:
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
        return line.decode("utf-8", errors="replace")

    def stop(self) -> None:
        """End the iteration now (a signal): what was not read yet is left unread."""
        self.eof = True
        self.buffer = b""
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
    reading = anyio.CancelScope()

    async def read(stdin: Any) -> None:
        with reading:
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

    async def stop() -> None:
        reading.cancel()
        lines.stop()

    async with anyio.create_task_group() as tg:
        await tg.start(_on_signal, stop)
        stdin_file = cast("anyio.AsyncFile[str]", lines)  # the SDK only iterates over it
        async with app.lifespan(), stdio_server(stdin=stdin_file) as (stdin, stdout), anyio.create_task_group() as io:
            written = anyio.Event()
            io.start_soon(read, stdin)
            io.start_soon(write, stdout, written)
            await app.server.run(server_in, server_out, app.server.create_initialization_options())
            server_out.close()
            await written.wait()
            io.cancel_scope.cancel()
        lines.close()
        log.info("stdio_finished")
        tg.cancel_scope.cancel()


def http_app(app: App) -> Starlette:
    """The Streamable HTTP endpoint at /mcp; its lifespan opens storage and the session manager."""
    settings = app.settings
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )
    manager = StreamableHTTPSessionManager(
        app=app.server,
        security_settings=security,
        max_request_body_size=settings.max_request_body_bytes,
        session_idle_timeout=settings.session_idle_seconds,
        max_sessions=settings.max_sessions,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with app.lifespan(), manager.run():
            yield

    return Starlette(routes=[Route("/mcp", endpoint=StreamableHTTPASGIApp(manager))], lifespan=lifespan)


async def serve_http(app: App, *, host: str, port: int) -> None:
    """Serve Streamable HTTP with uvicorn until SIGTERM/SIGINT, then drain and exit cleanly."""
    config = uvicorn.Config(
        http_app(app),
        host=host,
        port=port,
        loop="none",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=True,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = _Uvicorn(config)

    async def stop() -> None:
        server.should_exit = True

    async with anyio.create_task_group() as tg:
        await tg.start(_on_signal, stop)
        await server.serve()
        tg.cancel_scope.cancel()
