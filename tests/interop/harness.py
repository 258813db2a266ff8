"""Shared plumbing for the interop tests: the pinned Node tools, and mcp-desk servers on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parents[1]
NODE_MODULES = INTEROP_DIR / "node_modules"
NODE = NODE_MODULES / ".bin" / "node"
CONFORMANCE_JS = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR_JS = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
STARTUP_SECONDS = 30.0


def require_node_tools() -> None:
    """Fail loudly (never skip) when tests/interop/install.sh has not run."""
    if not NODE.exists() or not CONFORMANCE_JS.exists():
        raise RuntimeError("Node tooling missing: run tests/interop/install.sh (make test does)")


def desk_command() -> list[str]:
    """The `mcp-desk` command line of this environment."""
    return [str(Path(sys.executable).with_name("mcp-desk"))]


def free_port() -> int:
    """A port nobody is listening on right now (several engineers share this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def desk_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a server under test: its own storage, the sample docs, no .env leakage."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_DESK_")}
    env |= {
        "MCP_DESK_STORAGE_PATH": str(tmp / "data"),
        "MCP_DESK_DOCS_PATH": str(REPO_ROOT / "docs" / "kb"),
        "MCP_DESK_EXPORT_PATH": str(tmp / "exports"),
        "MCP_DESK_LOG_LEVEL": "warning",
    }
    return env | extra


def _wait_until_listening(port: int, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
    """Poll the port; a server that exits early fails at once with its exit code."""
    import time

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None:
                try:
                    code = proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError(f"server exited with {code} before listening") from None
            time.sleep(0.05)  # in-process server starting on a thread
    raise TimeoutError(f"server did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS}s")


@dataclass(frozen=True)
class RunningServer:
    """A server under test."""

    url: str
    port: int


@contextmanager
def desk_http(tmp: Path, env: Mapping[str, str] | None = None) -> Iterator[RunningServer]:
    """`mcp-desk http` as shipped, in a subprocess on a free loopback port."""
    import time

    port = free_port()
    command = [*desk_command(), "http", "--port", str(port)]
    server_env = dict(env or desk_env(tmp))
    # The sidecar defaults to port 3001: other servers on this machine may hold it, so pick a free one too.
    server_env.setdefault("MCP_DESK_HEALTH_PORT", str(free_port()))
    log_path = tmp / f"server-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(command, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            _wait_until_listening(port, proc, time.monotonic() + STARTUP_SECONDS)
        except RuntimeError as exc:
            log.flush()
            raise RuntimeError(f"{exc}; its output:\n{log_path.read_text(errors='replace')[-2000:]}") from None
        yield RunningServer(url=f"http://127.0.0.1:{port}/mcp", port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def conformance_asgi_app(tmp: Path) -> Any:
    """The HTTP app with the suite's fixtures registered: in-process only, never via the CLI."""
    from mcp_desk.config import Settings
    from tests.support.conformance import conformance_app

    settings = Settings(
        _env_file=None,
        storage_path=tmp / "data",
        docs_path=REPO_ROOT / "docs" / "kb",
        export_path=tmp / "exports",
        log_level="warning",
    )
    return conformance_app(settings, transport="http").http


@contextmanager
def conformance_http(tmp: Path) -> Iterator[RunningServer]:
    """The conformance profile served by uvicorn on a thread, on a free loopback port."""
    import time

    port = free_port()
    config = uvicorn.Config(conformance_asgi_app(tmp), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="conformance-server", daemon=True)
    thread.start()
    try:
        _wait_until_listening(port, None, time.monotonic() + STARTUP_SECONDS)
        yield RunningServer(url=f"http://127.0.0.1:{port}/mcp", port=port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run_node(
    args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run the pinned Node 22 with `args`; nothing is fetched from the network."""
    require_node_tools()
    full_env = dict(env or os.environ)
    full_env["PATH"] = f"{NODE.parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env["NO_UPDATE_NOTIFIER"] = "1"
    return subprocess.run(
        [str(NODE), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
