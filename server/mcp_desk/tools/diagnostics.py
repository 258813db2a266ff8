"""run_diagnostic: named, allow-listed command templates run in the sandbox."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import BaseModel, Field

from mcp_desk.domain.principal import Principal
from mcp_desk.policy.pipeline import READ_ONLY, WRITE, ToolAnnotationsSpec, ToolSpec
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import Allowlist, EnumParam, IntParam, Param, ParamValue, StringParam


class DiagnosticsEnv(Protocol):
    """What run_diagnostic needs from the ToolEnv."""

    @property
    def runner(self) -> CommandRunner: ...

    @property
    def principal(self) -> Principal: ...


class DiagnosticResult(BaseModel):
    """The outcome of one diagnostic run: output is capped and may be truncated."""

    name: str
    params: dict[str, ParamValue]
    exit_code: int | None = Field(description="The program's exit status; null or negative if it was killed.")
    stdout: str
    stderr: str
    truncated: bool = Field(description="True when the output exceeded the template's cap and the run was stopped.")
    killed: bool
    timed_out: bool
    duration_ms: int
    output_bytes: int = Field(description="Bytes the program wrote in total, including any cut off.")
    isolation: str = Field(description="bwrap, cgroup or process-group: how strongly the run was contained.")


DiagnosticName = Annotated[str, Field(max_length=64, description="The diagnostic's name, as listed by the server.")]
DiagnosticParams = Annotated[
    dict[str, Any] | None, Field(description="The diagnostic's typed parameters, by name; omit for defaults.")
]


async def run_diagnostic(
    env: DiagnosticsEnv, name: DiagnosticName, params: DiagnosticParams = None
) -> DiagnosticResult:
    """Run a named diagnostic on the server host (disk, memory, load, processes, recent log lines).

    Only the diagnostics the operator configured exist; an unknown name is answered with the list of
    valid names. Parameters are typed per diagnostic and never reach a shell.
    """
    result = await env.runner.run(name, params)
    return DiagnosticResult(
        name=result.name,
        params=result.params,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        truncated=result.truncated,
        killed=result.killed,
        timed_out=result.timed_out,
        duration_ms=result.duration_ms,
        output_bytes=result.bytes,
        isolation=result.isolation,
    )


def all_read_only(allowlist: Allowlist) -> bool:
    """True when every configured template declares read_only (then run_diagnostic is readOnlyHint)."""
    return all(template.read_only for template in allowlist)


def annotations_for(allowlist: Allowlist) -> ToolAnnotationsSpec:
    """run_diagnostic's truthful annotations for this allowlist."""
    return READ_ONLY if all_read_only(allowlist) else WRITE


def explain_diagnostics(allowlist: Allowlist) -> list[str]:
    """Human-readable lines for `mcp-desk policy explain`: each template, its limits and parameters."""
    lines: list[str] = []
    for template in allowlist:
        mode = "read-only" if template.read_only else "MAY CHANGE THE HOST"
        limits = f"timeout {template.timeout_seconds:g}s, output <= {template.max_output_bytes} bytes"
        lines.append(f"{template.name}: {template.program} {' '.join(template.argv)}".rstrip())
        lines.append(f"    {template.description} ({mode}; {limits})")
        for pname, param in template.params.items():
            lines.append(f"    param {pname}: {_describe(param, allowlist)}")
    return lines or ["(no diagnostics configured)"]


def _describe(param: Param, allowlist: Allowlist) -> str:
    if isinstance(param, EnumParam):
        text = "one of " + ", ".join(param.choices)
    elif isinstance(param, IntParam):
        text = f"integer {param.min}..{param.max}"
    elif isinstance(param, StringParam):
        text = f"string <= {param.max_length} chars matching {param.pattern!r}"
    else:
        text = f"file under {allowlist.roots[param.root]} (root {param.root!r})"
    return text if param.default is None else f"{text} (default {param.default})"


TOOLS = [ToolSpec(name="run_diagnostic", fn=run_diagnostic, scope="diagnostics:run", annotations=READ_ONLY)]
