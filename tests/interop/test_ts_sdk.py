"""The TypeScript SDK client (npm @modelcontextprotocol/sdk) against mcp-desk over stdio and Streamable HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .harness import INTEROP_DIR, desk_command, desk_env, desk_http, run_node

pytestmark = pytest.mark.slow
CLIENT = str(INTEROP_DIR / "ts_client.mjs")


def _run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = run_node([CLIENT, *args], cwd=INTEROP_DIR, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _assert_round_trip(seen: dict[str, Any]) -> None:
    assert {"create_note", "get_note"} <= set(seen["tools"])
    assert seen["fetched"] == seen["created"]
    assert seen["fetched"]["title"] == "TS SDK note"
    assert seen["fetchedIsError"] is False
    assert "TS SDK note" in seen["resourceText"]
    assert seen["promptMessages"] >= 1


def test_typescript_client_round_trips_over_stdio(tmp_path: Path) -> None:
    """List tools, create then get a note, read it as a resource, get a prompt: all over stdio."""
    seen = _run(["stdio", *desk_command(), "stdio"], desk_env(tmp_path))

    _assert_round_trip(seen)


def _api_key(tmp_path: Path, env: dict[str, str]) -> tuple[str, Path]:
    command = [*desk_command(), "keys", "create", "--principal", "ts-client", "--role", "agent", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    keys_file = tmp_path / "keys"
    keys_file.write_text(created["line"] + "\n")
    return created["key"], keys_file


def test_typescript_client_round_trips_over_http_with_an_api_key(tmp_path: Path) -> None:
    """The same round trip over Streamable HTTP, authenticated by a key from `mcp-desk keys create`."""
    env = desk_env(tmp_path)
    key, keys_file = _api_key(tmp_path, env)
    env["MCP_DESK_API_KEYS_FILE"] = str(keys_file)

    with desk_http(tmp_path, env) as server:
        seen = _run(["http", server.url, key], env)

    _assert_round_trip(seen)


def test_typescript_client_without_a_key_is_refused(tmp_path: Path) -> None:
    """With a keys file configured, a client presenting a wrong key never gets a session."""
    env = desk_env(tmp_path)
    _, keys_file = _api_key(tmp_path, env)
    env["MCP_DESK_API_KEYS_FILE"] = str(keys_file)

    with desk_http(tmp_path, env) as server:
        done = run_node([CLIENT, "http", server.url, "not-a-key"], cwd=INTEROP_DIR, env=env)

    assert done.returncode != 0
    assert "401" in done.stderr
