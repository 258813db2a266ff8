"""What tracing costs: stdio cold start and sequential calls/s with tracing off, on, and before tracing existed.

    python -m bench.tracing_cost [--reps 3] [--spawns 5] [--calls 300] [--before REV]

Variants, interleaved (the order rotates every repeat) and summarised by the median of the repeats:

- `off`: this checkout, no OTEL_* endpoint (tracing off: what every deployment without a collector runs);
- `on`: this checkout exporting every span over OTLP/HTTP to a loopback sink that answers 200 (the
  exporter's batching thread, protobuf encoding and HTTP posts included; the sink's decoding is not);
- `before` (with `--before REV`): the package as of git revision REV, extracted with `git archive` into a
  temporary folder and run from there with the same interpreter and dependencies.

Every variant runs as `python -m mcp_desk stdio` with its own fresh storage folder and raised limits.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import RAISED_LIMITS, RESULTS, ROOT, VENV_BIN, candidate_settings_keys, cv, median, proc_cpu_seconds
from bench.loadgen import NOTE_BODY
from bench.stdio_client import INITIALIZE, StdioServer, line


@dataclass
class Sink:
    """A loopback OTLP/HTTP endpoint that accepts every export and counts requests and bytes."""

    url: str = ""
    requests: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def otlp_sink() -> Iterator[Sink]:
    """Run the sink on a free port for the duration of the block."""
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with sink.lock:
                sink.requests += 1
                sink.bytes += len(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Variant:
    """One way of running the server."""

    name: str
    env: dict[str, str]


def extract_revision(rev: str, into: Path) -> Path:
    """`server/` of git revision `rev`, extracted under `into`; returns the source root to put on PYTHONPATH."""
    archive = subprocess.run(["git", "archive", rev, "server"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "server"


def base_env(storage: Path) -> dict[str, str]:
    """The process environment: no OTEL_ or MCP_DESK_ variable from outside, raised limits, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_DESK_", "OTEL_"))}
    known = candidate_settings_keys()
    env.update({k: v for k, v in RAISED_LIMITS.items() if not known or k in known})
    env.update(
        MCP_DESK_STORAGE_PATH=str(storage),
        MCP_DESK_DOCS_PATH=str(ROOT / "docs" / "kb"),
        MCP_DESK_EXPORT_PATH=str(storage / "exports"),
        MCP_DESK_LOG_LEVEL="warning",
    )
    return env


ARGV = [str(VENV_BIN / "python"), "-m", "mcp_desk", "stdio"]


def cold_start(variant: Variant) -> float:
    """Seconds from spawn to the initialize reply."""
    server = StdioServer(ARGV, variant.env)
    try:
        server.request(line(INITIALIZE), 0)
        return time.perf_counter() - server.t_spawn
    finally:
        server.close()


def calls_per_second(variant: Variant, *, calls: int, warmup: int) -> dict[str, float]:
    """Sequential create_note then get_note over one stdio connection: calls/s and server CPU us/call of each.

    The CPU time is the server process's (all threads: the exporter's batching thread included), which
    stays meaningful on a loaded machine where throughput mostly measures the neighbours.
    """
    server = StdioServer(ARGV, variant.env)
    try:
        server.initialize()
        args = {"title": "Tracing cost note", "body": NOTE_BODY, "tags": ["bench"]}
        note_id = server.call("create_note", args)["structuredContent"]["id"]
        out = {}
        for tool, arguments in (("create_note", args), ("get_note", {"note_id": note_id})):
            for _ in range(warmup):
                server.call(tool, arguments)
            t0, cpu0 = time.perf_counter(), proc_cpu_seconds(server.proc.pid)
            for _ in range(calls):
                server.call(tool, arguments)
            out[f"{tool}_calls_per_s"] = calls / (time.perf_counter() - t0)
            out[f"{tool}_cpu_us_per_call"] = (proc_cpu_seconds(server.proc.pid) - cpu0) / calls * 1e6
        return out
    finally:
        server.close()


def measure(variant: Variant, *, spawns: int, calls: int, warmup: int) -> dict[str, float]:
    """One repeat of one variant: median cold start over `spawns` starts, and calls/s."""
    cold = median([cold_start(variant) for _ in range(spawns)])
    rates = calls_per_second(variant, calls=calls, warmup=warmup)
    return {"cold_start_ms": cold * 1000, **rates}


def variants(work: Path, sink: Sink, before: str | None) -> list[Variant]:
    """The variants to compare, each with its own storage folder."""
    found = []
    if before is not None:
        source = extract_revision(before, work / "before-src")
        env = {**base_env(work / "before"), "PYTHONPATH": str(source)}
        found.append(Variant(name=f"before ({before})", env=env))
    found.append(Variant(name="off", env=base_env(work / "off")))
    on = {**base_env(work / "on"), "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
    found.append(Variant(name="on", env=on))
    return found


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """Medians per variant as a Markdown table."""
    metrics = [
        "cold_start_ms",
        "create_note_calls_per_s",
        "create_note_cpu_us_per_call",
        "get_note_calls_per_s",
        "get_note_cpu_us_per_call",
    ]
    rows = ["| variant | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, reps in results.items():
        cells = [f"{median([r[m] for r in reps]):.1f} (cv {cv([r[m] for r in reps]):.0%})" for m in metrics]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the medians (JSON of every repeat in bench/results/)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--spawns", type=int, default=5, help="cold starts per repeat (their median is kept)")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--before", help="a git revision to compare with (e.g. the commit before tracing)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp, otlp_sink() as sink:
        runs = variants(Path(tmp), sink, args.before)
        results: dict[str, list[dict[str, float]]] = {v.name: [] for v in runs}
        for rep in range(args.reps):
            for variant in runs[rep % len(runs) :] + runs[: rep % len(runs)]:
                results[variant.name].append(measure(variant, spawns=args.spawns, calls=args.calls, warmup=args.warmup))
        exported = {"requests": sink.requests, "bytes": sink.bytes}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tracing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results, "exported": exported}, indent=2))
    print(table(results))
    print(f"\nspans exported by `on`: {exported['requests']} requests, {exported['bytes']} bytes; all repeats: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
