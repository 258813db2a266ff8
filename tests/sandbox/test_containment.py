"""Hostile children against the real runner, with bwrap, with a cgroup only, and with the process group only."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import Template

pytestmark = pytest.mark.anyio

MakeRunner = Callable[..., CommandRunner]
Probed = Callable[[CommandRunner], Awaitable[CommandRunner]]
Shell = Callable[..., Template]
Leftovers = Callable[[str], list[int]]


async def run(runner: CommandRunner, name: str, params: dict[str, Any] | None = None) -> Any:
    """Run with a generous outer bound; the runner's own timeout is what is under test."""
    with anyio.fail_after(20):
        return await runner.run(name, params)


async def test_fork_bomb_is_contained_and_cleaned_up(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell, leftovers: Leftovers, token: str, mode: str
) -> None:
    """pids.max (cgroup) bounds the bomb even for root; RLIMIT_NPROC does only for other users."""
    if mode == "process-group" and os.getuid() == 0:
        pytest.skip("as root only a cgroup's pids.max bounds a fork bomb (RLIMIT_NPROC exempts root)")
    # A foreground pipeline: the script stays alive while the tree grows, so it ends by a refused fork or
    # the timeout, never by returning early while backgrounded descendants go on.
    bomb = shell_template("bomb", f"# {token}\nbomb() {{ bomb | bomb; }}\nbomb\n", timeout_seconds=2)
    runner = await probed(make_runner(bomb))

    result = await run(runner, "bomb")

    # Either the process cap refused a fork (bash says so), or, on a loaded machine, the timeout came
    # first; in both cases the whole tree must be gone.
    assert "fork" in result.stderr.lower() or result.timed_out
    assert leftovers(token) == []


async def test_memory_hog_fails_under_the_address_space_limit(
    make_runner: MakeRunner, probed: Probed, template: Any
) -> None:
    hog = template("hog", "/usr/bin/python3", ["-c", "b = bytearray(2 * 1024**3)"])
    runner = await probed(make_runner(hog))

    result = await run(runner, "hog")

    assert result.exit_code != 0
    assert "MemoryError" in result.stderr


async def test_output_flood_is_truncated_and_the_child_stopped(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell, leftovers: Leftovers, token: str
) -> None:
    flood = shell_template("flood", f"# {token}\nwhile :; do echo {token}{token}{token}; done\n")
    runner = await probed(make_runner(flood))

    result = await run(runner, "flood")

    assert result.truncated
    assert result.killed
    assert not result.timed_out
    assert len(result.stdout.encode()) == 4096
    assert result.bytes > 4096
    assert leftovers(token) == []


async def test_sleeping_grandchild_is_killed_when_the_command_exits(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell, leftovers: Leftovers, token: str
) -> None:
    script = f"sleep {token} &\necho started\n"
    runner = await probed(make_runner(shell_template("grandchild", script)))

    result = await run(runner, "grandchild")

    assert result.exit_code == 0
    assert result.stdout == "started\n"
    assert not result.timed_out
    assert leftovers(token) == []


async def test_setsid_escapee_is_killed_with_the_tree(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell, leftovers: Leftovers, token: str, mode: str
) -> None:
    if mode == "process-group":
        pytest.skip("a setsid child leaves the process group: the runner reports the weaker isolation instead")
    script = f"/usr/bin/setsid /bin/sh -c 'sleep {token}' </dev/null >/dev/null 2>&1 &\nsleep {token}\n"
    runner = await probed(make_runner(shell_template("escapee", script, timeout_seconds=1)))

    result = await run(runner, "escapee")

    assert result.timed_out
    assert result.killed
    assert leftovers(token) == []


async def test_timeout_kills_the_command_and_reports_it(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell, leftovers: Leftovers, token: str
) -> None:
    runner = await probed(make_runner(shell_template("slow", f"echo before\nsleep {token}\n", timeout_seconds=1)))

    result = await run(runner, "slow")

    assert result.timed_out
    assert result.killed
    assert result.stdout == "before\n"
    assert result.outcome == "timeout"
    assert leftovers(token) == []


@contextmanager
def stdin_pipe_held_open() -> Iterator[None]:
    """Make the server's fd 0 a pipe nobody writes to: an inheriting child would block on it forever."""
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)


async def test_child_reading_stdin_gets_end_of_file_at_once(
    make_runner: MakeRunner, probed: Probed, shell_template: Shell
) -> None:
    runner = await probed(make_runner(shell_template("reader", "cat\necho eof\n", timeout_seconds=5)))

    with stdin_pipe_held_open():
        result = await run(runner, "reader")

    assert result.stdout == "eof\n"
    assert not result.timed_out


async def test_server_secrets_do_not_reach_the_child(
    make_runner: MakeRunner, probed: Probed, template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_DESK_AUDIT_HMAC_KEY", "hmac-key-that-must-stay-home")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-that-must-stay-home")
    runner = await probed(make_runner(template("environ", "/usr/bin/env", [])))

    result = await run(runner, "environ")

    environ = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert "mcp-desk-run-" in environ.pop("PWD", "mcp-desk-run-")  # bwrap sets PWD after --chdir
    assert environ == {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}


CONNECT = """import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)
except OSError:
    print("no network")
else:
    print("connected")
"""


async def test_no_network_inside_bwrap_but_host_loopback_outside(
    make_runner: MakeRunner, probed: Probed, template: Any, mode: str
) -> None:
    """The same program reaches a host listener without bwrap and cannot with it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        connect = template("connect", "/usr/bin/python3", ["-c", CONNECT, str(port)])
        runner = await probed(make_runner(connect))

        result = await run(runner, "connect")

    assert result.stdout == ("no network\n" if mode == "bwrap" else "connected\n")


async def test_isolation_level_is_reported_in_status_and_result(
    make_runner: MakeRunner, probed: Probed, template: Any, mode: str
) -> None:
    runner = await probed(make_runner(template("true", "/usr/bin/true", [])))

    result = await run(runner, "true")

    status = runner.isolation_status()
    assert (status.level, status.ok) == (mode, mode == "bwrap")
    assert result.isolation == mode
    assert status.reason
