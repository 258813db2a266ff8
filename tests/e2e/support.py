"""Helpers for the end-to-end tests: API keys made by the real CLI, and the official client over real HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_desk.policy.keys import generate_key, key_line
from tests.e2e.conftest import MCP_DESK, base_env

Era = Literal["legacy", "2026-07-28"]
ERAS: tuple[Era, ...] = ("legacy", "2026-07-28")


def create_key(tmp_path: Path, principal: str, role: str, keys_file: Path | None = None) -> str:
    """Run `mcp-desk keys create --json`, append its line to the keys file, return the key."""
    keys_file = keys_file or tmp_path / "keys.txt"
    done = subprocess.run(
        [MCP_DESK, "keys", "create", "--principal", principal, "--role", role, "--json"],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created = json.loads(done.stdout)
    assert created["principal"] == principal
    assert created["role"] == role
    with keys_file.open("a") as sink:
        sink.write(created["line"] + "\n")
    key: str = created["key"]
    return key


def add_key(keys_file: Path, principal: str, role: str) -> str:
    """A new key appended to the keys file, made in-process with the same code `keys create` runs (faster)."""
    key = generate_key()
    with keys_file.open("a") as sink:
        sink.write(key_line(key, principal=principal, role=role) + "\n")
    return key


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one `mcp-desk` subcommand to completion."""
    return subprocess.run(
        [MCP_DESK, *args], env=base_env(tmp_path, **env), capture_output=True, text=True, timeout=60, check=False
    )


def http_client_for(key: str | None = None, **headers: str) -> httpx2.AsyncClient:
    """An HTTP client with the SDK's MCP timeouts, carrying the key as a bearer token."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return create_mcp_http_client(headers=headers)


@asynccontextmanager
async def connect(url: str, key: str | None = None, mode: Era = "legacy") -> AsyncIterator[Client]:
    """The official client over real Streamable HTTP in one protocol era, authenticated with `key`."""
    async with (
        http_client_for(key) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a server log file (other lines are skipped)."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


INITIALIZE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def initialize_request() -> dict[str, Any]:
    """A handshake-era `initialize` request, for checks of the HTTP layer with a raw client."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
