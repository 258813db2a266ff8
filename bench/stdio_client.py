"""A minimal, cheap stdio MCP client: newline-delimited JSON-RPC over a child's pipes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

HANDSHAKE_VERSION = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcp-desk-bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any]) -> bytes:
    """One JSON-RPC message as a stdio frame."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class StdioServer:
    """A server child process spoken to over stdin/stdout; stderr goes to a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path | None = None) -> None:
        self.log = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, bufsize=0
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        self.next_id = 1
        self.stray_lines = 0

    def request(self, raw: bytes, want_id: int) -> dict[str, Any]:
        """Write a frame and read frames until the response with `want_id` arrives."""
        self.stdin.write(raw)
        self.stdin.flush()
        return self.read_response(want_id)

    def read_response(self, want_id: int) -> dict[str, Any]:
        """Skip notifications; return the response with this id."""
        while True:
            data = self.stdout.readline()
            if not data:
                raise RuntimeError(f"server closed stdout (exit {self.proc.poll()})")
            if not data.startswith(b"{"):
                self.stray_lines += 1  # not a protocol message: a stdio server must never print these
                continue
            message: dict[str, Any] = json.loads(data)
            if message.get("id") == want_id:
                return message

    def initialize(self) -> dict[str, Any]:
        """The handshake: initialize, then notifications/initialized."""
        reply = self.request(line(INITIALIZE), 0)
        self.stdin.write(line(INITIALIZED))
        self.stdin.flush()
        return reply

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """tools/call; raises on a protocol or tool error."""
        self.next_id += 1
        params = {"name": tool, "arguments": arguments}
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": params}
        reply = self.request(line(msg), self.next_id)
        if "error" in reply or reply["result"].get("isError"):
            raise RuntimeError(f"{tool} failed: {json.dumps(reply)[:300]}")
        result: dict[str, Any] = reply["result"]
        return result

    def close(self, timeout: float = 15.0) -> int:
        """Close stdin (the clean way to end a stdio server) and wait."""
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.stdout.close()
        if self.log is not subprocess.DEVNULL:
            self.log.close()  # type: ignore[union-attr]
        return code
