"""The stdio server where uvloop and non-blocking pipes do not exist (Windows): forced here on Linux.

The server runs under a Python that cannot import uvloop and whose `os.set_blocking` refuses the stdin
pipe, as Windows pipes do before Python 3.12 (other pipes, such as the sandbox's, keep working);
everything else is the real `mcp-desk stdio`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ok
from tests.e2e.conftest import base_env

pytestmark = pytest.mark.anyio

WITHOUT_UVLOOP_OR_NONBLOCKING_PIPES = """
import os, sys
sys.modules["uvloop"] = None  # importing it now raises ImportError, as where it is not installed
wire, set_blocking = os.fstat(0), os.set_blocking
def refuse(fd, blocking):
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) == (wire.st_dev, wire.st_ino):
        raise OSError(22, "non-blocking pipes are not supported here")
    set_blocking(fd, blocking)
os.set_blocking = refuse
from mcp_desk.__main__ import main
sys.exit(main(["stdio"]))
"""


def _argv() -> list[str]:
    return [sys.executable, "-c", WITHOUT_UVLOOP_OR_NONBLOCKING_PIPES]


async def test_stdio_serves_tools_with_the_default_loop_and_a_reader_thread(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    parameters = StdioServerParameters(command=_argv()[0], args=_argv()[1:], env=env, cwd="/")
    async with Client(parameters) as client:
        created = ok(await client.call_tool("create_note", {"title": "fallback", "body": "b"}))
        assert ok(await client.call_tool("get_note", {"note_id": created["id"]}))["title"] == "fallback"
        assert ok(await client.call_tool("search_docs", {"query": "vpn"}))["items"]


def test_the_fallback_reader_is_chosen_and_sigterm_exits_0_while_stdin_stays_open(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        _argv(), env=base_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    init = (
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        '"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    )
    proc.stdin.write(init.encode())
    proc.stdin.flush()
    answer = proc.stdout.readline()  # the server is up and reading when it answers
    assert b'"id":1' in answer.replace(b" ", b"")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    log = proc.stderr.read().decode()
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()
    assert "stdin_reader_thread" in log
    assert "Traceback" not in log
