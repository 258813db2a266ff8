"""The sidecar on the health port: /health, /health/live, /health/ready and /metrics.

It runs beside either transport and keeps serving while the server drains, so an orchestrator
sees readiness turn 503 at once. `serve_sidecar` runs it under uvicorn with uvicorn's own signal
handling switched off: the transport owns SIGTERM/SIGINT (uvicorn would re-raise them and the
process would exit 143).
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_desk.health import CheckResult, HealthCheck, overall_status, run_checks
from mcp_desk.lifecycle import Lifecycle
from mcp_desk.metrics import CONTENT_TYPE, Metrics

__all__ = ["ServerWithoutSignals", "serve_sidecar", "sidecar_app"]

NO_STORE = {"Cache-Control": "no-store"}


def sidecar_app(
    *,
    metrics: Metrics,
    lifecycle: Lifecycle,
    checks: Sequence[HealthCheck],
    version: str,
    clock: Callable[[], float] = time.time,
    on_scrape: Callable[[], Awaitable[None]] | None = None,
    replica: str | None = None,
) -> Starlette:
    """Build the sidecar; `on_scrape` may refresh gauges (e.g. ticket counts) before /metrics renders.

    Both /health and /metrics run the checks and record them as `mcp_desk_health_check_status{check}`,
    so alert rules see the same verdicts /health gives.
    """
    started = clock()
    metrics.declare_health_checks(check.name for check in checks)

    async def checked() -> dict[str, CheckResult]:
        results = await run_checks(checks)
        metrics.set_health({name: result.status for name, result in results.items()})
        return results

    async def health(_: Request) -> Response:
        results = await checked()
        status = overall_status(results)
        now = clock()
        body = {
            "status": status,
            "checks": {name: _public(r.status, r.detail) for name, r in results.items()},
            "version": version,
            **({"replica": replica} if replica is not None else {}),
            "uptime_seconds": round(max(now - started, 0.0), 3),
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
        }
        return JSONResponse(body, status_code=503 if status == "unhealthy" else 200, headers=NO_STORE)

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "alive"}, headers=NO_STORE)

    dependencies = [check for check in checks if check.gates_readiness]

    async def ready(_: Request) -> Response:
        if lifecycle.ready and dependencies:
            failed = sorted(name for name, r in (await run_checks(dependencies)).items() if r.status == "fail")
            if failed:
                return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503, headers=NO_STORE)
        code = 200 if lifecycle.ready else 503
        return JSONResponse({"status": lifecycle.state.value}, status_code=code, headers=NO_STORE)

    async def scrape(_: Request) -> Response:
        await checked()
        if on_scrape is not None:
            await on_scrape()
        return Response(metrics.render(), media_type=CONTENT_TYPE, headers=NO_STORE)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _public(status: str, detail: str | None) -> dict[str, str]:
    return {"status": status} if detail is None else {"status": status, "detail": detail}


class ServerWithoutSignals(uvicorn.Server):
    """uvicorn without its signal handlers: the transport decides when to stop."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing (uvicorn would otherwise re-raise SIGTERM after shutting down)."""
        yield


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen before reporting started, so clients never race the server's start-up."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_sidecar(
    app: Starlette,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 5.0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until cancelled, then shut down gracefully; `task_status.started(port)` gives the bound port."""
    sock = _listen(host, port)
    config = uvicorn.Config(
        app, log_config=None, lifespan="off", server_header=False, timeout_graceful_shutdown=math.ceil(shutdown_timeout)
    )
    server = ServerWithoutSignals(config)
    finished = anyio.Event()

    async def run() -> None:
        # Shielded, so cancelling the caller turns into uvicorn's own graceful shutdown below.
        with anyio.CancelScope(shield=True):
            try:
                await server.serve(sockets=[sock])
            finally:
                finished.set()
                tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        task_status.started(sock.getsockname()[1])
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(shutdown_timeout + 1.0):
                await finished.wait()
            server.force_exit = True
