"""Stdio cold start: spawn the server and time until its `initialize` reply (what Claude Desktop waits for).

    python -m bench.cold_start [--runs 10] [--candidate mcp-desk|baseline] [--importtime]

`--importtime` runs the target once with `python -X importtime` and prints the slowest imports,
which is the profile that bounds cold start.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Target, baseline_target, candidate_target, stdio_env, summarize_ms
from bench.stdio_client import INITIALIZE, StdioServer, line


def spawn_to_initialize(target: Target) -> tuple[float, float]:
    """Seconds from spawn to the initialize reply, and from closing stdin to exit."""
    server = StdioServer(target.stdio_argv, stdio_env(target))
    t0 = server.t_spawn
    server.stdin.write(line(INITIALIZE))
    server.stdin.flush()
    server.read_response(0)
    t1 = time.perf_counter()
    server.close()
    return t1 - t0, time.perf_counter() - t1


def importtime(target: Target, top: int = 20) -> list[tuple[int, str]]:
    """The slowest imports (cumulative microseconds) of one start-up to the initialize reply."""
    env = {**stdio_env(target), "PYTHONPROFILEIMPORTTIME": "1"}
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        server = StdioServer(target.stdio_argv, env, Path(log.name))
        server.request(line(INITIALIZE), 0)
        server.close()
        rows = []
        for raw in Path(log.name).read_text(errors="replace").splitlines():
            if raw.startswith("import time:") and "|" in raw:
                _, cumulative, name = raw.split("|", 2)
                if cumulative.strip().isdigit():
                    rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    """Measure one target and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--candidate", choices=["mcp-desk", "baseline"], default="mcp-desk")
    p.add_argument("--importtime", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        target = candidate_target(work, with_key=False) if args.candidate == "mcp-desk" else baseline_target(work)
        if args.importtime:
            for us, name in importtime(target):
                print(f"{us / 1000:9.1f} ms  {name}")
            return 0
        spawn_to_initialize(target)  # first run creates the database; not counted
        samples = [spawn_to_initialize(target)[0] for _ in range(args.runs)]
        print(json.dumps({target.name: summarize_ms(samples)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
