"""Real processes: `mcp-desk stdio` and `mcp-desk http` started as a user would, on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import KB

MCP_DESK = str(Path(sys.executable).parent / "mcp-desk")


def free_port() -> int:
    """A port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The process environment for a server under test: no MCP_DESK_ variable leaks in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_DESK_")}
    env.update(
        MCP_DESK_STORAGE_PATH=str(tmp_path / "data"),
        MCP_DESK_DOCS_PATH=str(KB),
        MCP_DESK_EXPORT_PATH=str(tmp_path / "exports"),
        MCP_DESK_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@dataclass
class HttpServer:
    """A running `mcp-desk http` process."""

    process: subprocess.Popen[bytes]
    port: int
    health_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        """Send `sig` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the process if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until the server accepts connections (or fail with its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")


StartHttp = Callable[..., HttpServer]


def launch(directory: Path, name: str, *args: str, **env: str) -> HttpServer:
    """Start `mcp-desk http` with its data under `directory`, logging to `directory/name.log`; wait until it listens."""
    port, health = free_port(), free_port()
    log = directory / f"{name}.log"
    full_env = base_env(directory, MCP_DESK_HEALTH_PORT=str(health), **env)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [MCP_DESK, "http", "--port", str(port), *args], env=full_env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = HttpServer(process=process, port=port, health_port=health, log=log)
    try:
        wait_for_port(port, process, log)
    except BaseException:
        server.kill()
        raise
    return server


@pytest.fixture
def start_http(tmp_path: Path) -> Iterator[StartHttp]:
    servers: list[HttpServer] = []

    def start(*args: str, **env: str) -> HttpServer:
        server = launch(tmp_path, f"server-{len(servers)}", *args, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
