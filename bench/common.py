"""Shared pieces of the harness: the servers under test, free ports, /proc readings, statistics."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"

# Settings that move mcp-desk's limits out of the benchmark's way; only keys the installed
# Settings knows are passed (unknown MCP_DESK_ keys are a start-up error by design).
RAISED_LIMITS = {
    "MCP_DESK_RATE_LIMIT_RPM": "100000000",
    "MCP_DESK_RATE_LIMIT_TPM": "1000000000000",
    "MCP_DESK_MAX_DAILY_TOKENS": "1000000000000",
    "MCP_DESK_MAX_DAILY_SPEND": "1000000000",
    "MCP_DESK_MAX_SESSIONS": "100000",
    "MCP_DESK_MAX_SESSIONS_PER_PRINCIPAL": "100000",
    "MCP_DESK_MAX_CONCURRENT_REQUESTS": "100000",
    "MCP_DESK_LOG_LEVEL": "warning",
}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nobody listens on right now (bind 0 on loopback), never the same one twice per run."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Block until something accepts connections on the port, or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port} within {timeout}s")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    """Resident set size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def loadavg() -> float:
    """One-minute load average (other people's work shows up here)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def candidate_settings_keys() -> set[str]:
    """The MCP_DESK_ keys the installed mcp-desk accepts (empty if mcp-desk is not importable)."""
    try:
        from mcp_desk.config import ENV_PREFIX, Settings
    except ImportError:
        return set()
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def raised_overrides() -> dict[str, str]:
    """RAISED_LIMITS as `load_settings(**overrides)` keyword arguments, for in-process apps."""
    known = candidate_settings_keys()
    prefix = "MCP_DESK_"
    return {k.removeprefix(prefix).lower(): v for k, v in RAISED_LIMITS.items() if k in known}


@dataclass
class Target:
    """One server under test: how to start it over HTTP and over stdio."""

    name: str
    http_argv: list[str]
    stdio_argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    api_key: str = ""

    def full_env(self) -> dict[str, str]:
        """The environment the server runs with (ours, minus stray MCP_DESK_ keys, plus its own)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("MCP_DESK_")}
        return {**base, **self.env}


def baseline_target(workdir: Path, name: str = "baseline") -> Target:
    """The bare-SDK server of bench/baseline_server.py, with its own database."""
    db = workdir / f"{name}.db"
    mod = [sys.executable, "-m", "bench.baseline_server"]
    return Target(
        name=name,
        http_argv=[*mod, "http", "--db", str(db), "--port", "{port}"],
        stdio_argv=[*mod, "stdio", "--db", str(db)],
    )


def candidate_target(workdir: Path, *, with_key: bool = True) -> Target:
    """`mcp-desk http|stdio` with the default policy, an admin API key and raised limits."""
    exe = str(VENV_BIN / "mcp-desk")
    storage = workdir / "candidate"
    storage.mkdir(parents=True, exist_ok=True)
    known = candidate_settings_keys()
    env = {
        "MCP_DESK_STORAGE_PATH": str(storage),
        "MCP_DESK_DOCS_PATH": str(ROOT / "docs" / "kb"),
        "MCP_DESK_EXPORT_PATH": str(storage / "exports"),
        "MCP_DESK_HEALTH_PORT": "{health_port}",
        **RAISED_LIMITS,
    }
    env = {k: v for k, v in env.items() if not known or k in known}
    target = Target(
        name="mcp-desk",
        http_argv=[exe, "http", "--host", LOOPBACK, "--port", "{port}"],
        stdio_argv=[exe, "stdio"],
        env=env,
    )
    if with_key and (not known or "MCP_DESK_API_KEYS_FILE" in known):
        key = create_api_key(exe, storage, target)
        if key:
            target.api_key = key
            target.env["MCP_DESK_API_KEYS_FILE"] = str(storage / "api-keys.txt")
    return target


def create_api_key(exe: str, storage: Path, target: Target) -> str:
    """`mcp-desk keys create --principal bench --role admin --json`, appended to a keys file; '' if unsupported."""
    env = {k: v.replace("{health_port}", "0") for k, v in target.full_env().items()}
    env.pop("MCP_DESK_HEALTH_PORT", None)
    proc = subprocess.run(
        [exe, "keys", "create", "--principal", "bench", "--role", "admin", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        print(
            f"note: no API key ({proc.stderr.strip()[:200] or 'keys create failed'}); running keyless", file=sys.stderr
        )
        return ""
    created = json.loads(proc.stdout)
    with (storage / "api-keys.txt").open("a", encoding="utf-8") as fh:
        fh.write(created["line"].rstrip("\n") + "\n")
    return str(created["key"])


@contextmanager
def http_server(target: Target, log: IO[str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a target's HTTP server on a free loopback port; stop it (SIGTERM, then SIGKILL) afterwards."""
    port, health = free_port(), free_port()
    argv = [a.replace("{port}", str(port)) for a in target.http_argv]
    env = {k: v.replace("{health_port}", str(health)) for k, v in target.full_env().items()}
    sink: Any = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        wait_for_port(port, proc)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stdio_env(target: Target) -> dict[str, str]:
    """Environment for a stdio run (no health sidecar)."""
    env = target.full_env()
    env.pop("MCP_DESK_HEALTH_PORT", None)
    return env


# --- statistics --------------------------------------------------------------------------------


def pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds from samples in seconds."""
    ordered = sorted(samples_s)
    return {
        "n": len(ordered),
        "p50_ms": round(pct(ordered, 50) * 1e3, 3),
        "p90_ms": round(pct(ordered, 90) * 1e3, 3),
        "p99_ms": round(pct(ordered, 99) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3) if ordered else float("nan"),
    }


def median(values: Sequence[float]) -> float:
    """Median, NaN for nothing."""
    return statistics.median(values) if values else float("nan")


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (stdev / mean) of repeated measurements; the machine's noise."""
    if len(values) < 2 or statistics.mean(values) == 0:
        return 0.0
    return statistics.stdev(values) / statistics.mean(values)


async def drive(concurrency: int, seconds: float, op: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    """Run `op(i)` from `concurrency` tasks for `seconds`; calls/s and latency percentiles (ms)."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await op(next(counter))
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"calls_per_s": round(len(latencies) / (time.perf_counter() - started), 1), **summarize_ms(latencies)}
