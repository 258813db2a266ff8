"""Render a run_all result as the Markdown tables of bench/README.md, with the issue's targets checked."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench import pyspy

TARGET_TPUT_RATIO = 1.0
TARGET_P99_RATIO = 1.0
TARGET_COLD_RATIO = 1.05
TARGET_PIPELINE_US = 50.0
TARGET_SESSION_KIB = 40.0
TARGET_SEARCH_P99_MS = 25.0


def _ok(good: bool | None) -> str:
    return "n/a" if good is None else ("met" if good else "**missed**")


def _num(value: Any, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def http_tables(http: dict[str, Any], base: str, cand: str) -> list[str]:
    """The throughput/latency matrix plus noise and generator verdicts."""
    rows = sorted(http["cells"], key=lambda r: (r["tool"], r["era"], r["concurrency"]))
    out = [
        "### Streamable HTTP, closed loop (median of repeats)",
        "",
        f"| tool | era | conc. | {base} calls/s | {cand} calls/s | ratio | {base} p99 ms | {cand} p99 ms "
        f"| p99 ratio | noise CV {base}/{cand} | gen. CPU | server CPU us/call {base}/{cand} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        errors = r["base_errors"] + r["cand_errors"]
        err = f" ({errors} errors)" if errors else ""
        out.append(
            f"| {r['tool']}{err} | {r['era']} | {r['concurrency']} | {_num(r['base_tput'])} | {_num(r['cand_tput'])} "
            f"| {_num(r['tput_ratio'], 2)} | {_num(r['base_p99'], 2)} | {_num(r['cand_p99'], 2)} "
            f"| {_num(r['p99_ratio'], 2)} | {r['base_cv']:.1%} / {r['cand_cv']:.1%} "
            f"| {max(r['base_gen_cpu'], r['cand_gen_cpu']):.0%} "
            f"| {_num(r['base_srv_us'], 0)} / {_num(r['cand_srv_us'], 0)} |"
        )
    cvs = [r[f"{role}_cv"] for r in rows for role in ("base", "cand")]
    gens = [max(r["base_gen_cpu"], r["cand_gen_cpu"]) for r in rows]
    if cvs:
        out += [
            "",
            f"Machine noise: throughput CV across repeats, median {statistics.median(cvs):.1%}, "
            f"worst {max(cvs):.1%}. Load generator: at most {max(gens):.0%} of one core "
            + (
                "(not the bottleneck)."
                if max(gens) < 0.6
                else "(**may have been the bottleneck**: it shares the 2 cores with the server)."
            ),
        ]
    return out


def pipeline_tables(pipe: dict[str, Any]) -> list[str]:
    """Whole-pipeline cost per variant, then each guard's marginal cost."""
    variants: dict[str, Any] = pipe.get("variants", {"default": pipe})
    out = [
        "",
        "### Policy pipeline alone (one call at a time, no transport, no storage)",
        "",
        "| settings | whole chain µs/call | bare tool µs/call | pipeline wall µs/call | pipeline CPU µs/call |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        out.append(
            f"| {name} | {v['chain_us_per_call']} | {v['bare_tool_us_per_call']} | {v['pipeline_us_per_call']} "
            f"| {v.get('pipeline_cpu_us_per_call', 'n/a')} |"
        )
    guards = {name: {g["guard"]: g for g in v.get("per_guard", [])} for name, v in variants.items()}
    order = [g["guard"] for g in next(iter(variants.values())).get("per_guard", [])]
    if order:
        head = " | ".join(f"{name} wall µs | {name} CPU µs" for name in variants)
        out += ["", f"| guard (outermost first) | {head} |", "|---|" + "---:|" * (2 * len(variants))]
        for guard in order:
            cells = " | ".join(
                f"{guards[n].get(guard, {}).get('wall_us', 'n/a')} | {guards[n].get(guard, {}).get('cpu_us', 'n/a')}"
                for n in variants
            )
            out.append(f"| {guard} | {cells} |")
        out += ["", "Per-guard figures are differences of medians; a few µs either way, even below zero, is noise."]
    return out


def render(results: dict[str, Any]) -> str:
    """The whole report."""
    names = results.get("names", {"base": "baseline", "cand": "mcp-desk"})
    base, cand = names["base"], names["cand"]
    s = results["settings"]
    lines = [
        f"## Benchmark run {results['started']} UTC",
        "",
        f"Baseline `{base}` (bare `mcp` SDK) vs candidate `{cand}`"
        + (" with an API key" if names.get("api_key") else " (keyless)")
        + "".join(f", `{k}={v}`" for k, v in results.get("candidate_env", {}).items())
        + f"; {s['repeats']} repeats of {s['duration']} s (+{s['warmup']} s warm-up) per cell, interleaved; "
        f"load average {results['loadavg_start']} at start, {results.get('loadavg_end', '?')} at end.",
        "",
    ]
    targets: list[tuple[str, str, bool | None]] = []
    http = results.get("http", {})
    if "cells" in http:
        lines += http_tables(http, base, cand)
        for r in http["cells"]:
            if r["concurrency"] == 32:
                label = f"{r['tool']}, {r['era']}, c=32"
                tput, p99 = r["tput_ratio"], r["p99_ratio"]
                targets.append((f"calls/s ≥ 1.0x bare SDK ({label})", f"{tput:.2f}x", tput >= TARGET_TPUT_RATIO))
                targets.append((f"p99 ≤ 1.0x bare SDK ({label})", f"{p99:.2f}x", p99 <= TARGET_P99_RATIO))
    elif "error" in http:
        lines += [f"HTTP section failed: {http['error']}"]
    stdio = results.get("stdio", {})
    if base in stdio:
        lines += ["", "### stdio, sequential calls (median of repeats)", ""]
        lines += [
            f"| tool | {base} p50 ms | {cand} p50 ms | {base} p99 ms | {cand} p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for tool in stdio[base]:
            b, c = stdio[base][tool], stdio[cand][tool]
            lines.append(f"| {tool} | {b['p50_ms']} | {c['p50_ms']} | {b['p99_ms']} | {c['p99_ms']} |")
    cold = results.get("cold", {})
    if "ratio" in cold:
        lines += [
            "",
            "### stdio cold start (spawn → `initialize` reply)",
            "",
            f"| {base} median ms | {cand} median ms | ratio | noise CV {base}/{cand} |",
            "|---:|---:|---:|---:|",
            f"| {cold[base]['median_ms']} | {cold[cand]['median_ms']} | {cold['ratio']:.3f} "
            f"| {cold[base]['cv']:.1%} / {cold[cand]['cv']:.1%} |",
        ]
        targets.append(
            ("stdio cold start ≤ 1.05x bare SDK", f"{cold['ratio']:.3f}x", cold["ratio"] <= TARGET_COLD_RATIO)
        )
        if cold.get("importtime_top"):
            lines += ["", f"Slowest imports of `{cand}` at start-up (cumulative ms):", "", "```"]
            lines += [f"{ms:9.1f}  {name}" for ms, name in cold["importtime_top"]]
            lines += ["```"]
    memory = results.get("memory", {})
    if base in memory:
        b, c = memory[base]["kib_per_session"], memory[cand]["kib_per_session"]
        lines += [
            "",
            f"### Memory per idle session ({memory[base]['sessions']} sessions, handshake era)",
            "",
            f"| {base} KiB/session | {cand} KiB/session |",
            "|---:|---:|",
            f"| {b} | {c} |",
        ]
        targets.append(("memory per idle session ≤ 40 KiB", f"{c} KiB", c <= TARGET_SESSION_KIB))
    pipe = results.get("pipeline", {})
    if "pipeline_us_per_call" in pipe:
        lines += pipeline_tables(pipe)
        us = pipe["pipeline_us_per_call"]
        targets.append(("policy pipeline ≤ 50 µs/call (wall, default settings)", f"{us} µs", us <= TARGET_PIPELINE_US))
    search = results.get("search", {})
    sizes = [k for k in search if k.isdigit()]
    if sizes:
        lines += [
            "",
            "### search_notes through the tool path (ms)",
            "",
            "| notes | p50 | p90 | p99 | storage-only p99 | p99 common word | p99 mid | p99 rare | p99 two words "
            "| p99 prefix |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size in sorted(sizes, key=int):
            t, st = search[size]["tool"], search[size]["storage"]
            kinds = " | ".join(str(t[k]["p99_ms"]) for k in ("common", "mid", "rare", "two_words", "prefix"))
            lines.append(
                f"| {int(size):,} | {t['all']['p50_ms']} | {t['all']['p90_ms']} | {t['all']['p99_ms']} "
                f"| {st['all']['p99_ms']} | {kinds} |"
            )
        biggest = max(sizes, key=int)
        p99 = search[biggest]["tool"]["all"]["p99_ms"]
        targets.append(
            (f"search_notes p99 ≤ 25 ms at {int(biggest):,} notes", f"{p99} ms", p99 <= TARGET_SEARCH_P99_MS)
        )
    for name in ("search", "pipeline", "memory", "cold", "stdio"):
        if "error" in results.get(name, {}):
            lines += ["", f"{name} section failed: {results[name]['error']}"]
    if targets:
        lines += ["", "### Targets (issue 10)", "", "| target | measured | |", "|---|---:|---|"]
        lines += [f"| {t} | {m} | {_ok(g)} |" for t, m, g in targets]
    for key, summary in http.get("profiles", {}).items():
        name, era = key.split("|")
        lines += ["", pyspy.markdown(f"py-spy: {name}, {era} era, c={s['profile_concurrency']}", summary)]
    return "\n".join(lines) + "\n"
