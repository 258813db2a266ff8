"""Sequential tool-call latency over stdio: one client, one call at a time.

python -m bench.stdio_latency [--calls 500] [--candidate mcp-desk|baseline]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Target, baseline_target, candidate_target, stdio_env, summarize_ms
from bench.loadgen import NOTE_BODY
from bench.stdio_client import StdioServer


def measure(target: Target, *, calls: int, warmup: int, log: Path | None = None) -> dict[str, Any]:
    """Time `calls` create_note and `calls` get_note calls, each after `warmup` unmeasured ones."""
    server = StdioServer(target.stdio_argv, stdio_env(target), log)
    try:
        server.initialize()
        args = {"title": "Stdio latency note", "body": NOTE_BODY, "tags": ["bench"]}
        note_id = server.call("create_note", args)["structuredContent"]["id"]
        out: dict[str, Any] = {}
        for tool, arguments in (("create_note", args), ("get_note", {"note_id": note_id})):
            for _ in range(warmup):
                server.call(tool, arguments)
            samples = []
            for _ in range(calls):
                t0 = time.perf_counter()
                server.call(tool, arguments)
                samples.append(time.perf_counter() - t0)
            out[tool] = summarize_ms(samples)
        return out
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    """Measure one target and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--candidate", choices=["mcp-desk", "baseline"], default="mcp-desk")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        target = candidate_target(work, with_key=False) if args.candidate == "mcp-desk" else baseline_target(work)
        print(json.dumps({target.name: measure(target, calls=args.calls, warmup=args.warmup)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
