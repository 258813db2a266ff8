"""Sample a running server with py-spy and say where its time goes.

`record()` starts py-spy on a process for a fixed time (raw collapsed stacks); `summarize()` turns
the stacks into the two views that explain a throughput gap: own time by function (the leaf frame)
and inclusive time by component (the package a frame's file belongs to: mcp, starlette, uvicorn,
pydantic, anyio, server, sqlite in our code, ...).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import VENV_BIN

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
COMPONENTS = (
    "mcp_desk",
    "bench",
    "mcp_types",
    "mcp",
    "starlette",
    "sse_starlette",
    "uvicorn",
    "httptools",
    "h11",
    "pydantic_core",
    "pydantic",
    "anyio",
    "structlog",
    "prometheus_client",
    "limits",
    "argon2",
    "jwt",
    "orjson",
    "json",
    "asyncio",
    "sqlite3",
    "threading",
    "concurrent",
    "logging",
)


def py_spy() -> str | None:
    """The py-spy executable (pinned dev dependency), if installed."""
    exe = VENV_BIN / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen[bytes] | None:
    """Start sampling `pid` for `seconds` into `out` (raw collapsed stacks); None without py-spy."""
    exe = py_spy()
    if exe is None:
        print("note: py-spy not installed; no profile", file=sys.stderr)
        return None
    argv = [exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", str(rate)]
    argv += ["-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Frames that only start a thread or the event loop: inclusive shares are counted below them.
ENTRY = frozenset({"Runner.run", "WorkerThread.run", "Thread.run", "Thread._bootstrap_inner", "Thread._bootstrap"})
# Leaves that mean "waiting", not working (py-spy cannot always tell an idle thread).
IDLE = frozenset({"Condition.wait", "Event.wait", "Queue.get", "select", "poll"})
# A sample whose Python leaf is the loop runner is inside uvloop's C code: polling or running callbacks.
LOOP = "Runner.run"


def component(path: str) -> str:
    """The top-level package of a frame's file, as py-spy shortens it."""
    parts = path.replace("\\", "/").split("/")
    for part in parts:
        name = part.removesuffix(".py")
        if name in COMPONENTS:
            return name
    return parts[0].removesuffix(".py") if parts else "?"


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Own time by function and inclusive time by component, as shares of the busy samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = loop = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [(m["func"], m["file"]) if (m := _FRAME.match(f)) else (f, "?") for f in stack.split(";")]
        leaf_func, leaf_file = frames[-1]
        if leaf_func in IDLE:
            idle += count
            continue
        total += count
        if leaf_func == LOOP:
            loop += count
        start = max((i + 1 for i, (func, _) in enumerate(frames) if func in ENTRY), default=0)
        for name in {component(file) for _, file in frames[start:]}:
            inclusive[name] += count
        own[f"{leaf_func} ({leaf_file})"] += count
    if total == 0:
        return {"samples": 0, "idle_samples": idle, "own": [], "components": []}
    return {
        "samples": total,
        "idle_samples": idle,
        "event_loop_c_share": round(100 * loop / total, 1),
        "own": [(name, round(100 * n / total, 1)) for name, n in own.most_common(top)],
        "components": [(name, round(100 * n / total, 1)) for name, n in inclusive.most_common(top)],
    }


def markdown(title: str, summary: dict[str, Any]) -> str:
    """A short Markdown rendering of `summarize()`."""
    if not summary.get("samples"):
        return f"#### {title}\n\n(no samples)\n"
    lines = [
        f"#### {title}",
        "",
        f"{summary['samples']} busy samples ({summary['idle_samples']} idle-thread samples left out); "
        f"{summary['event_loop_c_share']}% of busy samples sit in the event loop's own C code (uvloop: polling "
        "and socket work), shown as `Runner.run`.",
        "",
        "| component (inclusive, below the loop/thread entry) | % |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {share} |" for name, share in summary["components"]]
    lines += ["", "| function (own time) | % |", "|---|---:|"]
    lines += [f"| `{name}` | {share} |" for name, share in summary["own"]]
    return "\n".join(lines) + "\n"
