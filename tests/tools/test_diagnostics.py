"""run_diagnostic as a tool: its result model, errors and annotations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import InvalidInput, PermissionDenied
from mcp_desk.sandbox.isolation import IsolationConfig
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import load_allowlist
from mcp_desk.tools.diagnostics import TOOLS, DiagnosticResult, run_diagnostic

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Env:
    """The slice of ToolEnv the tool reads."""

    runner: CommandRunner
    principal: Principal


def deny_all(root: Path, candidate: str) -> Path:
    """A resolver that refuses every path."""
    raise PermissionDenied("paths are not allowed here")


@pytest.fixture
def env() -> Env:
    """The shipped templates without bwrap."""
    allowlist = load_allowlist(None, roots={"logs": Path("/var/log")})
    runner = CommandRunner(allowlist, path_resolver=deny_all, isolation=IsolationConfig(mode="none"))
    return Env(runner=runner, principal=Principal(id="ada", role="admin", scopes=frozenset({"diagnostics:run"})))


async def test_run_diagnostic_returns_the_structured_result(env: Env) -> None:
    with anyio.fail_after(20):
        result = await run_diagnostic(env, "kernel_version")

    assert isinstance(result, DiagnosticResult)
    assert result.exit_code == 0
    assert result.stdout.startswith("Linux ")
    assert result.output_bytes == len(result.stdout.encode())
    assert result.model_dump()["isolation"] in {"cgroup", "process-group"}


async def test_an_unknown_name_is_invalid_input_listing_valid_names(env: Env) -> None:
    with pytest.raises(InvalidInput, match=r"valid names: .*memory"):
        await run_diagnostic(env, "reboot")


async def test_path_refusals_from_the_resolver_reach_the_caller(env: Env) -> None:
    with pytest.raises(PermissionDenied):
        await run_diagnostic(env, "tail_log", {"file": "syslog"})


def test_the_tool_needs_the_diagnostics_scope_and_is_read_only_by_default() -> None:
    (spec,) = TOOLS
    assert (spec.name, spec.scope, spec.annotations.read_only) == ("run_diagnostic", "diagnostics:run", True)
