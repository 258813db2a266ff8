"""run_stdio(app) and run_http(app): the process owns SIGTERM/SIGINT and drains before it exits 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Generator
from typing import Any

import anyio
import structlog
import uvicorn
from anyio import CancelScope
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from server.app import App

log = structlog.get_logger()


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: it re-raises SIGTERM after shutdown (exit 143), we exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _on_signal(app: App, scope: CancelScope, stop: Any) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            await stop()
            scope.cancel()
            return


async def serve_stdio(app: App) -> None:
    """Serve one client on stdin/stdout until it closes stdin or a signal arrives."""
    async with app.lifespan(), anyio.create_task_group() as tg:

        async def stop() -> None:
            return None

        tg.start_soon(_on_signal, app, tg.cancel_scope, stop)
        async with stdio_server() as (read_stream, write_stream):
            await app.server.run(read_stream, write_stream, app.server.create_initialization_options())
        log.info("stdin_closed")
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
        tg.start_soon(_on_signal, app, anyio.CancelScope(), stop)
        await server.serve()
        tg.cancel_scope.cancel()
