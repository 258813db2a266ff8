"""A real HAProxy (Debian package `haproxy`) running the shipped `deploy/haproxy.cfg` in front of loopback replicas."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import HttpServer, free_port

HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
INSTALL = REPO / "tests" / "scale" / "install_haproxy.sh"


def haproxy_binary() -> str:
    subprocess.run(["bash", str(INSTALL)], check=False, capture_output=True, timeout=600)
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.fail("haproxy is not installed and could not be (Debian package haproxy; needs root)")
    return found


def loopback_config(servers: Sequence[tuple[str, HttpServer]], port: int) -> str:
    """The shipped configuration with only its listen address and servers pointed at loopback ports."""
    text = HAPROXY_CFG.read_text()
    lines = "\n".join(
        f"    server {name} 127.0.0.1:{server.port} port {server.health_port}" for name, server in servers
    )
    text, binds = re.subn(r"(?m)^    bind :8000$", f"    bind 127.0.0.1:{port}", text)
    text, templates = re.subn(r"(?m)^    server-template .*$", lines, text)
    assert (binds, templates) == (1, 1), "the shipped haproxy.cfg changed shape"
    return text


@contextmanager
def running_haproxy(servers: Sequence[tuple[str, HttpServer]], directory: Path) -> Iterator[str]:
    """HAProxy with the shipped configuration in front of `servers`; yields its /mcp URL."""
    binary = haproxy_binary()
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(loopback_config(servers, port))
    log = directory / "haproxy.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until_routed(port, process, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait()


def wait_until_routed(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until HAProxy listens and forwards (a replica's 4xx for a bare GET means it got through)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"haproxy exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"haproxy did not start:\n{log.read_text()[-3000:]}")
