"""The whole benchmark: bare SDK vs mcp-desk, interleaved in one run, medians, ratios, noise.

    python -m bench.run_all                 # full run (several minutes; `make bench`)
    python -m bench.run_all --quick         # short smoke run to check the harness
    python -m bench.run_all --candidate baseline   # A/A: baseline against itself (harness + noise check)

Both HTTP servers stay up for the whole HTTP section; for every cell (era x concurrency x tool)
and every repeat, the two are measured back to back in alternating order (ABBA), so drift in the
machine's load hits both alike. Each cell reports the median of the repeats, the ratio
candidate/baseline, the coefficient of variation across repeats (the machine's noise), the load
generator's own CPU use, and each server's CPU per call. Results go to bench/results/ as JSON and
Markdown; the Markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cold_start, pyspy, session_memory, stdio_latency
from bench.common import (
    RESULTS,
    ROOT,
    Target,
    baseline_target,
    candidate_target,
    cv,
    http_server,
    loadavg,
    median,
    proc_cpu_seconds,
)
from bench.report import render


def loadgen(port: int, era: str, conc: int, tool: str, args: argparse.Namespace, api_key: str) -> dict[str, Any]:
    """One load-generator run in its own process; its JSON summary."""
    argv = [sys.executable, "-m", "bench.loadgen", "--url", f"http://127.0.0.1:{port}/mcp", "--era", era]
    argv += ["--concurrency", str(conc), "--tool", tool, "--duration", str(args.duration)]
    argv += ["--warmup", str(args.warmup), "--max-calls", str(args.max_calls)]
    if api_key:
        argv += ["--api-key", api_key]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=args.duration * 4 + 120, check=False)
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RuntimeError(f"loadgen failed: {proc.stderr.strip()[-1000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def http_section(base: Target, cand: Target, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Throughput and latency matrix, interleaved; optional py-spy profiles at the profile concurrency."""
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {}
    profiles: dict[str, Any] = {}
    with (
        (logs / f"{base.name}-http.log").open("w") as blog,
        (logs / f"{cand.name}-http.log").open("w") as clog,
        http_server(base, blog) as (bproc, bport),
        http_server(cand, clog) as (cproc, cport),
    ):
        servers = {base.name: (bproc, bport, base.api_key), cand.name: (cproc, cport, cand.api_key)}
        order = [base.name, cand.name]
        flip = 0
        for rep in range(args.repeats):
            for era in args.eras:
                for conc in args.concurrency:
                    for tool in args.tools:
                        key = f"{era}|{conc}|{tool}"
                        names = order if flip % 2 == 0 else order[::-1]
                        flip += 1
                        for name in names:
                            proc, port, api_key = servers[name]
                            cpu0 = proc_cpu_seconds(proc.pid)
                            result = loadgen(port, era, conc, tool, args, api_key)
                            cpu = proc_cpu_seconds(proc.pid) - cpu0
                            result["server_cpu_us_per_call"] = round(cpu / max(1, result["calls_all"]) * 1e6, 1)
                            result["server_cpu_ratio"] = round(cpu / (args.duration + args.warmup), 3)
                            cells.setdefault(key, {}).setdefault(name, []).append(result)
                            print(
                                f"  [{rep + 1}/{args.repeats}] {era:9} c={conc:<3} {tool:11} {name:9} "
                                f"{result['throughput']:8.1f}/s p99 {result['p99_ms']:8.2f} ms "
                                f"err {result['errors']} gen-cpu {result['gen_cpu_ratio']:.2f} "
                                f"srv-cpu {result['server_cpu_us_per_call']:.0f} us/call",
                                file=sys.stderr,
                            )
        if args.profile:
            for era in args.eras:
                for name in order:
                    proc, port, api_key = servers[name]
                    raw = logs / f"pyspy-{name}-{era}.txt"
                    spy = pyspy.record(proc.pid, args.duration, raw)
                    loadgen(port, era, args.profile_concurrency, args.tools[0], args, api_key)
                    if spy is not None:
                        spy.wait(timeout=60)
                        if raw.exists():
                            profiles[f"{name}|{era}"] = pyspy.summarize(raw)
    return {"cells": summarize_cells(cells, base.name, cand.name), "raw": cells, "profiles": profiles}


def summarize_cells(cells: dict[str, dict[str, list[dict[str, Any]]]], base: str, cand: str) -> list[dict[str, Any]]:
    """Medians over repeats, ratios and noise per cell."""
    rows = []
    for key, by_name in cells.items():
        era, conc, tool = key.split("|")
        row: dict[str, Any] = {"era": era, "concurrency": int(conc), "tool": tool}
        for name, role in ((base, "base"), (cand, "cand")):
            runs = by_name.get(name, [])
            tput = [r["throughput"] for r in runs]
            row[f"{role}_tput"] = round(median(tput), 1)
            row[f"{role}_p50"] = round(median([r["p50_ms"] for r in runs]), 2)
            row[f"{role}_p99"] = round(median([r["p99_ms"] for r in runs]), 2)
            row[f"{role}_cv"] = round(cv(tput), 3)
            row[f"{role}_errors"] = sum(r["errors"] for r in runs)
            row[f"{role}_gen_cpu"] = round(median([r["gen_cpu_ratio"] for r in runs]), 2)
            row[f"{role}_srv_us"] = round(median([r["server_cpu_us_per_call"] for r in runs]), 0)
            row[f"{role}_srv_cpu"] = round(median([r["server_cpu_ratio"] for r in runs]), 2)
        row["tput_ratio"] = round(row["cand_tput"] / row["base_tput"], 2) if row["base_tput"] else float("nan")
        row["p99_ratio"] = round(row["cand_p99"] / row["base_p99"], 2) if row["base_p99"] else float("nan")
        rows.append(row)
    return rows


def stdio_section(base: Target, cand: Target, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Sequential stdio latency, interleaved, medians of repeats."""
    runs: dict[str, list[dict[str, Any]]] = {base.name: [], cand.name: []}
    for rep in range(args.repeats):
        for target in (base, cand) if rep % 2 == 0 else (cand, base):
            log = logs / f"{target.name}-stdio.log"
            runs[target.name].append(stdio_latency.measure(target, calls=args.stdio_calls, warmup=20, log=log))
    out: dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = {
            tool: {q: round(median([r[tool][q] for r in results]), 3) for q in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
            for tool in results[0]
        }
    return out


def cold_section(base: Target, cand: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Spawn -> initialize reply, alternating targets every run; first run of each not counted."""
    cold_start.spawn_to_initialize(base)
    cold_start.spawn_to_initialize(cand)
    samples: dict[str, list[float]] = {base.name: [], cand.name: []}
    for i in range(args.cold_runs):
        for target in (base, cand) if i % 2 == 0 else (cand, base):
            samples[target.name].append(cold_start.spawn_to_initialize(target)[0])
    out: dict[str, Any] = {
        name: {"median_ms": round(median(s) * 1e3, 1), "cv": round(cv(s), 3), "runs": len(s)}
        for name, s in samples.items()
    }
    out["ratio"] = round(out[cand.name]["median_ms"] / out[base.name]["median_ms"], 3)
    if args.profile:
        out["importtime_top"] = [(round(us / 1000, 1), name) for us, name in cold_start.importtime(cand, 25)]
    return out


def memory_section(base: Target, cand: Target, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """KiB per idle session, each target on a fresh server; median of repeats."""
    out: dict[str, Any] = {}
    for target in (base, cand):
        with (logs / f"{target.name}-memory.log").open("w") as log:
            results = [
                session_memory.measure(target, sessions=args.sessions, get_stream=False, log=log)
                for _ in range(max(1, min(2, args.repeats)))
            ]
        out[target.name] = {
            "kib_per_session": round(median([r["kib_per_session"] for r in results]), 2),
            "runs": [r["kib_per_session"] for r in results],
            "sessions": args.sessions,
        }
    return out


def module_json(module: str, argv: list[str], timeout: float, logs: Path) -> dict[str, Any]:
    """Run `python -m module argv` and parse the JSON it prints (stderr to a log)."""
    log = logs / f"{module.rsplit('.', 1)[-1]}.log"
    with log.open("w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", module, *argv],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed (exit {proc.returncode}); see {log}")
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(last)
    return result


def section(name: str, results: dict[str, Any], fn: Callable[[], Any]) -> None:
    """Run one section; a failure is recorded, not fatal, so the other sections still report."""
    print(f"== {name}", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"   {name} failed: {exc}", file=sys.stderr)
    print(f"   {name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (defaults = the full run)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidate", choices=["mcp-desk", "baseline"], default="mcp-desk")
    p.add_argument("--quick", action="store_true", help="short everything: validates the harness in ~1 minute")
    p.add_argument("--eras", default="handshake,modern")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--tools", default="create_note,get_note")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--max-calls", type=int, default=100_000)
    p.add_argument("--stdio-calls", type=int, default=300)
    p.add_argument("--cold-runs", type=int, default=10)
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--search-sizes", default="10000,100000,1000000", help="empty to skip")
    p.add_argument("--search-queries", type=int, default=200)
    p.add_argument("--pipeline-calls", type=int, default=5000)
    p.add_argument("--profile", action="store_true", help="py-spy both HTTP servers, -X importtime the candidate")
    p.add_argument("--profile-concurrency", type=int, default=32)
    p.add_argument("--skip", default="", help="comma list of: http,stdio,cold,memory,search,pipeline")
    p.add_argument("--baseline-args", default="", help="extra flags for baseline_server, e.g. '--gc-freeze'")
    p.add_argument(
        "--candidate-env",
        default="",
        help="extra settings for mcp-desk, e.g. 'MCP_DESK_AUDIT_FSYNC=false' (space-separated KEY=VALUE)",
    )
    if p.parse_args(argv).quick:  # shorter defaults; options given explicitly still win
        p.set_defaults(concurrency="8,32", repeats=2, duration=1.5, warmup=0.5, tools="create_note")
        p.set_defaults(stdio_calls=100, cold_runs=3, sessions=100, search_sizes="10000", search_queries=50)
        p.set_defaults(pipeline_calls=1000)
    args = p.parse_args(argv)
    args.eras = [e for e in args.eras.split(",") if e]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.tools = [t for t in args.tools.split(",") if t]
    args.skip = {s for s in args.skip.split(",") if s}
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every section, write results, print the Markdown report."""
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-{stamp}"
    logs.mkdir()
    results: dict[str, Any] = {
        "started": stamp,
        "argv": sys.argv[1:],
        "loadavg_start": loadavg(),
        "settings": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="mcp-desk-bench-") as tmp:
        work = Path(tmp)
        base = baseline_target(work)
        if args.baseline_args:
            extra = args.baseline_args.split()
            base.http_argv += extra
            base.stdio_argv += [a for a in extra if a == "--gc-freeze"]
        cand = candidate_target(work) if args.candidate == "mcp-desk" else baseline_target(work, "baseline-b")
        extra_env = dict(item.split("=", 1) for item in args.candidate_env.split())
        cand.env.update(extra_env)
        results["candidate_env"] = extra_env
        results["names"] = {"base": base.name, "cand": cand.name, "api_key": bool(cand.api_key)}
        if "http" not in args.skip:
            section("http", results, lambda: http_section(base, cand, args, logs))
        if "stdio" not in args.skip:
            section("stdio", results, lambda: stdio_section(base, cand, args, logs))
        if "cold" not in args.skip:
            section("cold", results, lambda: cold_section(base, cand, args))
        if "memory" not in args.skip:
            section("memory", results, lambda: memory_section(base, cand, args, logs))
    if args.candidate == "mcp-desk":
        if "pipeline" not in args.skip:
            pipe_argv = ["--calls", str(args.pipeline_calls)] + (["--profile"] if args.profile else [])
            section("pipeline", results, lambda: module_json("bench.pipeline_cost", pipe_argv, 600, logs))
        if "search" not in args.skip and args.search_sizes:
            search_argv = ["--sizes", args.search_sizes, "--queries", str(args.search_queries)]
            section("search", results, lambda: module_json("bench.search_notes", search_argv, 3600, logs))
    results["loadavg_end"] = loadavg()
    report = render(results)
    (RESULTS / f"run-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / f"run-{stamp}.md").write_text(report)
    (RESULTS / "latest.md").write_text(report)
    print(report)
    print(f"results: {RESULTS / f'run-{stamp}.json'}  logs: {logs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
