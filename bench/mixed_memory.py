"""Resident memory and threads of the HTTP server under a bounded mixed load (reads and writes, both eras).

    python -m bench.mixed_memory [--seconds 40] [--clients 8] [--candidate mcp-desk|baseline]

Four load generators run at once against one server (list_notes and create_note, each in both eras,
`--clients` each), for `--seconds` in all; the server's RSS and thread count are sampled once a
second. It reports RSS after warm-up (the first quarter), at the peak and at the end, the largest
rise between two samples after warm-up (a jump the size of a page cache shows there), the peak
thread count, and each generator's calls/s and p99. Bounded by time; loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, baseline_target, candidate_target, http_server, proc_rss_kib

MIXES = [("list_notes", "modern"), ("list_notes", "handshake"), ("create_note", "modern"), ("create_note", "handshake")]


def threads(pid: int) -> int:
    """The process's thread count."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def run(candidate: str, seconds: float, clients: int) -> dict[str, Any]:
    """Start the server, load it, sample it; the summary."""
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        target = candidate_target(work) if candidate == "mcp-desk" else baseline_target(work)
        with http_server(target) as (proc, port):
            generators = [_start_loadgen(port, tool, era, clients, seconds, target.api_key) for tool, era in MIXES]
            samples: list[tuple[float, int, int]] = []
            start = time.monotonic()
            while any(g.poll() is None for g in generators) and time.monotonic() - start < seconds + 60:
                samples.append((time.monotonic() - start, proc_rss_kib(proc.pid), threads(proc.pid)))
                time.sleep(1.0)
            outputs = [_result(g) for g in generators]
    return _summary(samples, outputs, seconds)


def _start_loadgen(port: int, tool: str, era: str, clients: int, seconds: float, key: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.loadgen", "--url", f"http://127.0.0.1:{port}/mcp", "--era", era]
    argv += ["--concurrency", str(clients), "--tool", tool, "--duration", str(seconds), "--warmup", "1"]
    if key:
        argv += ["--api-key", key]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _summary(samples: list[tuple[float, int, int]], outputs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    warm = [s for s in samples if s[0] >= seconds / 4] or samples
    rises = [b[1] - a[1] for a, b in itertools.pairwise(warm)]
    return {
        "rss_after_warmup_mib": round(warm[0][1] / 1024, 1),
        "rss_peak_mib": round(max(s[1] for s in samples) / 1024, 1),
        "rss_end_mib": round(samples[-1][1] / 1024, 1),
        "largest_rise_mib": round(max(rises, default=0) / 1024, 1),
        "threads_peak": max(s[2] for s in samples),
        "load": [
            {
                "tool": tool,
                "era": era,
                "calls_per_s": out.get("throughput"),
                "p99_ms": out.get("p99_ms"),
                "errors": out.get("errors"),
            }
            for (tool, era), out in zip(MIXES, outputs, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Measure one target and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--candidate", choices=["mcp-desk", "baseline"], default="mcp-desk")
    args = p.parse_args(argv)
    sys.stdout.write(json.dumps(run(args.candidate, args.seconds, args.clients), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
