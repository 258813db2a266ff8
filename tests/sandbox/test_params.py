"""Parameters against the real runner and the shipped templates: no option or argv injection, path rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_desk.errors import AppError, CommandRejected, InvalidInput, PermissionDenied
from mcp_desk.sandbox.isolation import IsolationConfig
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import Allowlist, load_allowlist

pytestmark = pytest.mark.anyio

Resolver = Callable[[Path, str], Path]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A log root with one log file, a FIFO, a directory and a symlink pointing out of the root."""
    root = tmp_path / "logs"
    root.mkdir()
    (root / "app.log").write_text("alpha\n--help\n-v beta\ngamma\n")
    (root / "sub").mkdir()
    os.mkfifo(root / "pipe")
    (root / "escape.log").symlink_to("/etc/passwd")
    (root / ".env").write_text("TOKEN=x\n")
    return root


@pytest.fixture(params=["bwrap", "none"])
def runner(request: pytest.FixtureRequest, logs: Path, resolver: Resolver) -> CommandRunner:
    """The shipped templates over the test log root, with bwrap and without."""
    allowlist = load_allowlist(None, roots={"logs": logs})
    isolation = IsolationConfig(mode="auto" if request.param == "bwrap" else "none")
    return CommandRunner(allowlist, path_resolver=resolver, isolation=isolation)


async def run(runner: CommandRunner, name: str, params: dict[str, Any] | None = None) -> Any:
    """Run with an outer bound."""
    with anyio.fail_after(20):
        return await runner.run(name, params)


async def test_a_string_that_looks_like_an_option_is_searched_for_literally(runner: CommandRunner, logs: Path) -> None:
    result = await run(runner, "grep_log", {"text": "--help", "file": "app.log", "max_matches": 5})

    assert result.argv == ("/usr/bin/grep", "-F", "-m", "5", "--", "--help", str(logs / "app.log"))
    assert result.stdout == "--help\n"
    assert result.params == {"max_matches": 5, "text": "--help", "file": str(logs / "app.log")}


async def test_a_value_with_spaces_stays_one_argv_item(runner: CommandRunner) -> None:
    result = await run(runner, "grep_log", {"text": "-v beta", "file": "app.log"})

    assert result.argv[5] == "-v beta"
    assert result.stdout == "-v beta\n"


@pytest.mark.parametrize(
    "params",
    [
        {"lines": "5 --help", "file": "app.log"},
        {"lines": ["5", "--follow"], "file": "app.log"},
        {"lines": -5, "file": "app.log"},
        {"lines": True, "file": "app.log"},
        {"lines": 5, "file": "app.log", "extra": "--follow"},
        {"lines": 5, "file": ["app.log", "--follow"]},
        {"lines": 5},
    ],
)
async def test_parameters_cannot_add_options_or_argv_items(runner: CommandRunner, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="tail_log: "):
        await run(runner, "tail_log", params)


async def test_control_characters_and_over_long_strings_are_refused(runner: CommandRunner) -> None:
    for text in ("a\nb", "nul\x00", "x" * 201):
        with pytest.raises(InvalidInput, match="param 'text'"):
            await run(runner, "grep_log", {"text": text, "file": "app.log"})


async def test_a_dash_value_before_the_separator_is_rejected(template: Any, resolver: Resolver, tmp_path: Path) -> None:
    """A string placed where the program parses options may never start with '-'."""
    echo = template("echo", "/usr/bin/echo", ["{word}"], params={"word": {"type": "string", "pattern": ".+"}})
    runner = CommandRunner(Allowlist.unchecked_for_tests({"echo": echo}, {}), path_resolver=resolver)

    with pytest.raises(CommandRejected, match="may not start with '-'"):
        await run(runner, "echo", {"word": "-e"})
    assert (await run(runner, "echo", {"word": "plain"})).stdout == "plain\n"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../../etc/passwd", InvalidInput),
        ("/etc/passwd", InvalidInput),
        ("escape.log", PermissionDenied),
        (".env", PermissionDenied),
        ("pipe", InvalidInput),
        ("sub", InvalidInput),
        ("missing.log", InvalidInput),
        ("", InvalidInput),
    ],
)
async def test_path_params_obey_the_path_rules(runner: CommandRunner, path: str, error: type[AppError]) -> None:
    with pytest.raises(error):
        await run(runner, "tail_log", {"file": path})


async def test_tail_reads_an_allowed_log_file(runner: CommandRunner) -> None:
    result = await run(runner, "tail_log", {"file": "app.log", "lines": 1})

    assert (result.exit_code, result.stdout, result.truncated) == (0, "gamma\n", False)


async def test_unknown_name_lists_the_valid_names(runner: CommandRunner) -> None:
    with pytest.raises(InvalidInput, match="valid names: disk_usage, grep_log"):
        await run(runner, "rm -rf /")


async def test_each_run_reports_its_outcome_to_the_metric_hook(logs: Path, resolver: Resolver) -> None:
    seen: list[tuple[str, str]] = []
    allowlist = load_allowlist(None, roots={"logs": logs})
    runner = CommandRunner(allowlist, path_resolver=resolver, on_run=lambda c, o: seen.append((c, o)))

    await run(runner, "tail_log", {"file": "app.log"})
    await run(runner, "grep_log", {"text": "absent", "file": "app.log"})
    with pytest.raises(PermissionDenied):
        await run(runner, "tail_log", {"file": "escape.log"})

    assert seen == [("tail_log", "ok"), ("grep_log", "failed"), ("tail_log", "rejected")]


async def test_required_isolation_refuses_to_run_without_bwrap(logs: Path, resolver: Resolver) -> None:
    allowlist = load_allowlist(None, roots={"logs": logs})
    isolation = IsolationConfig(mode="none", require_isolation=True)
    runner = CommandRunner(allowlist, path_resolver=resolver, isolation=isolation)

    with pytest.raises(CommandRejected, match="need bubblewrap isolation"):
        await run(runner, "memory")
    assert runner.isolation_status().ok is False


async def test_a_missing_bwrap_degrades_with_a_reason(logs: Path, resolver: Resolver, tmp_path: Path) -> None:
    allowlist = load_allowlist(None, roots={"logs": logs})
    isolation = IsolationConfig(bwrap_path=tmp_path / "no-bwrap")
    runner = CommandRunner(allowlist, path_resolver=resolver, isolation=isolation)

    assert runner.isolation_status().reason == "sandbox not probed yet"
    status = await runner.probe()

    assert status.level != "bwrap"
    assert not status.ok
    assert "not found" in status.reason
    assert (await run(runner, "memory")).exit_code == 0


async def test_concurrent_runs_are_capped(template: Any, resolver: Resolver, tmp_path: Path) -> None:
    """With a cap of one, three runs started together never overlap (each logs start and end)."""
    record = tmp_path / "record"
    script = tmp_path / "step.sh"
    script.write_text(f"echo start >> {record}\nsleep 0.1\necho end >> {record}\n")
    step = template("step", "/bin/sh", [str(script)])
    allowlist = Allowlist.unchecked_for_tests({"step": step}, {})
    runner = CommandRunner(allowlist, path_resolver=resolver, isolation=IsolationConfig(mode="none"), max_concurrent=1)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(run, runner, "step")

    assert record.read_text().split() == ["start", "end"] * 3


@pytest.mark.parametrize("name", ["disk_usage", "memory", "uptime", "processes", "kernel_version", "os_release"])
async def test_the_shipped_host_diagnostics_run(runner: CommandRunner, name: str) -> None:
    """Including the host_view ones (ps, df, uptime), which must see the host's processes and mounts."""
    if name not in runner.allowlist.templates:
        pytest.skip(f"{name}'s program is not installed here")
    result = await run(runner, name)

    assert (result.exit_code, result.truncated, result.timed_out) == (0, False, False)
    assert result.stdout.strip()
    if name == "processes":
        assert len(result.stdout.splitlines()) > 3  # the host's processes, not only a PID namespace's
