"""Stdio cold start: spawn the server and time until its `initialize` reply (what Claude Desktop waits for).

    python -m bench.cold_start [--runs 10] [--candidate mcp-desk|baseline] [--importtime] [--compare]

`--importtime` runs the target once with `python -X importtime` and prints the slowest imports,
which is the profile that bounds cold start. `--compare` spawns the bare SDK and mcp-desk in turn
(ABBA) and prints both medians and their ratio: wall time to the reply, and the child's CPU time
(user + system, from /proc, read when the reply arrives), which a busy neighbour disturbs far less.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Target, baseline_target, candidate_target, median, proc_cpu_seconds, stdio_env, summarize_ms
from bench.stdio_client import INITIALIZE, StdioServer, line


def spawn_to_initialize(target: Target) -> tuple[float, float, float]:
    """Seconds from spawn to the initialize reply, from closing stdin to exit, and CPU seconds to the reply."""
    server = StdioServer(target.stdio_argv, stdio_env(target))
    t0 = server.t_spawn
    server.stdin.write(line(INITIALIZE))
    server.stdin.flush()
    server.read_response(0)
    t1 = time.perf_counter()
    cpu = proc_cpu_seconds(server.proc.pid)
    server.close()
    return t1 - t0, time.perf_counter() - t1, cpu


def compare(base: Target, cand: Target, runs: int) -> dict[str, float]:
    """Medians of wall and CPU milliseconds to the initialize reply, both targets spawned in turn (ABBA)."""
    samples: dict[str, list[tuple[float, float, float]]] = {base.name: [], cand.name: []}
    for target in (base, cand):
        spawn_to_initialize(target)  # the first run creates the database; not counted
    for i in range(runs):
        for target in (base, cand) if i % 2 == 0 else (cand, base):
            samples[target.name].append(spawn_to_initialize(target))
    wall = {name: median([s[0] for s in runs_]) * 1000 for name, runs_ in samples.items()}
    cpu = {name: median([s[2] for s in runs_]) * 1000 for name, runs_ in samples.items()}
    return {
        "baseline_wall_ms": round(wall[base.name], 1),
        "mcp_desk_wall_ms": round(wall[cand.name], 1),
        "wall_ratio": round(wall[cand.name] / wall[base.name], 3),
        "baseline_cpu_ms": round(cpu[base.name], 1),
        "mcp_desk_cpu_ms": round(cpu[cand.name], 1),
        "cpu_ratio": round(cpu[cand.name] / cpu[base.name], 3),
        "runs": runs,
    }


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
    p.add_argument("--compare", action="store_true", help="the bare SDK and mcp-desk in turn, with ratios")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        if args.compare:
            print(json.dumps(compare(baseline_target(work), candidate_target(work, with_key=False), args.runs)))
            return 0
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
