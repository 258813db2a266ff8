"""Per-call cost of mcp-desk's guard chain alone, without MCP, transport or storage.

A no-op tool shaped like `create_note` (same arguments and annotations, so the audit log writes
its intent record too; it echoes the arguments back so redaction has a real
result to scan) is added to the app; its `ToolCall` is pushed through the app's own chain (every
guard app.py wires, in its order) many times, one call at a time. The same tool called directly,
with the endpoint's `model_dump`, is the floor; the difference is the pipeline's cost, as wall time
(what a caller waits) and CPU time (what the server spends). It runs with the default settings
and, to tell waiting on the disk from computing, once more with `audit_fsync` off. With the defaults the
no-op tool commits nothing, so its intent record takes the fsync of the audit file that a real write
skips (a real write commits its intent in its own transaction: `mcp_desk.intents`); the figure with the
fsync off is the one a real write's chain costs, plus its journal row. Logging is configured as the
server's at `warning`. `per_guard` is each guard's marginal cost: the chain from that guard inward
minus the chain from the next guard inward.

    python -m bench.pipeline_cost [--calls 5000] [--profile]

`--fixed N` runs 50 warm-up calls then exactly N chained calls (audit fsync off) and prints nothing,
for an instruction count that the machine's load cannot move: under
`valgrind --tool=callgrind`, (Ir with `--fixed 300` - Ir with `--fixed 0`) / 300 is the chain's
instructions per call (the bare tool included), start-up cancelling out. `bench/pipeline_instructions.sh`
runs both and prints that figure.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from bench.common import ROOT, candidate_settings_keys, median, raised_overrides
from bench.loadgen import NOTE_BODY
from mcp_desk.app import SHIPPED_TOOLS, App, create_app
from mcp_desk.config import load_settings
from mcp_desk.domain.principal import ALL_SCOPES, Principal
from mcp_desk.logging import configure_logging
from mcp_desk.policy.pipeline import WRITE, ToolCall, ToolSpec, build_chain
from mcp_desk.tools.env import Body, Tags, Title


class Echo(BaseModel):
    """What the no-op tool returns."""

    id: str
    title: str
    body: str
    tags: list[str]
    version: int


async def bench_noop(env: Any, title: Title, body: Body, tags: Tags | None = None) -> Echo:
    """Return the arguments; touches no storage."""
    return Echo(id="note_0000000000000000", title=title, body=body, tags=tags or [], version=1)


ARGUMENTS: dict[str, Any] = {"title": "Pipeline cost probe", "body": NOTE_BODY, "tags": ["bench", "vpn"]}


SPEC = ToolSpec(name="bench_noop", fn=bench_noop, scope="notes:write", annotations=WRITE)
PRINCIPAL = Principal(id="bench", role="admin", scopes=ALL_SCOPES, transport="http")


def make_call(i: int) -> ToolCall:
    """The i-th call of the no-op tool, as the registry would build it."""
    return ToolCall(spec=SPEC, principal=PRINCIPAL, arguments=dict(ARGUMENTS), request_id=f"{i:016x}")


@contextmanager
def bench_app(overrides: Mapping[str, Any]) -> Iterator[App]:
    """The app with the no-op tool beside the shipped ones, its storage and audit in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mcp-desk-pipeline-") as tmp:
        settings = load_settings(
            env_file=None,
            **overrides,
            storage_path=Path(tmp),
            docs_path=ROOT / "docs" / "kb",
            export_path=Path(tmp) / "exports",
        )
        yield create_app(settings, transport="memory", tools=(*SHIPPED_TOOLS, SPEC))


def unwrap_chain(chain: Any) -> tuple[list[Any], Any]:
    """The guards (outermost first) and the endpoint of a chain made by `build_chain`."""
    guards = []
    while isinstance(chain, partial) and "call_next" in chain.keywords:
        guards.append(chain.func)
        chain = chain.keywords["call_next"]
    return guards, chain


def guard_name(guard: Any) -> str:
    """A readable name for a guard: its class, or its function (bound methods say Class.method)."""
    func = getattr(guard, "__func__", None)
    if func is not None:
        return f"{type(guard.__self__).__name__}.{func.__name__}"
    return getattr(guard, "__name__", type(guard).__name__)


async def per_guard(chain: Any, make_call: Any, calls: int, rounds: int = 3) -> list[dict[str, Any]]:
    """Marginal wall and CPU cost of each guard: chain from guard i on, minus chain from guard i+1 on.

    Every suffix is timed in each of `rounds` rounds (interleaved) and the medians are subtracted,
    so a slow moment of the disk or the machine does not land on one guard.
    """
    guards, endpoint = unwrap_chain(chain)
    subs = [build_chain(guards[i:], endpoint) for i in range(len(guards) + 1)]
    wall: list[list[float]] = [[] for _ in subs]
    cpu: list[list[float]] = [[] for _ in subs]
    for sub in subs:
        await sub(make_call(0))
    for _ in range(rounds):
        for i, sub in enumerate(subs):
            t0, c0 = time.perf_counter(), time.process_time()
            for j in range(calls):
                await sub(make_call(j))
            wall[i].append((time.perf_counter() - t0) / calls * 1e6)
            cpu[i].append((time.process_time() - c0) / calls * 1e6)
    w = [median(x) for x in wall]
    c = [median(x) for x in cpu]
    return [
        {"guard": guard_name(g), "wall_us": round(w[i] - w[i + 1], 1), "cpu_us": round(c[i] - c[i + 1], 1)}
        for i, g in enumerate(guards)
    ]


async def measure(calls: int, profile: bool, audit_fsync: bool) -> dict[str, Any]:
    """Wall and CPU time of the chain and of the bare tool, interleaved in blocks of 500."""
    overrides: dict[str, Any] = dict(raised_overrides())
    if "MCP_DESK_AUDIT_FSYNC" in candidate_settings_keys():
        overrides["audit_fsync"] = audit_fsync
    with bench_app(overrides) as app:
        chain = app.registry.chain

        async def chained(i: int) -> Any:
            return await chain(make_call(i))

        async def bare(i: int) -> Any:
            make_call(i)
            result = await bench_noop(None, **ARGUMENTS)
            return result.model_dump(mode="json")

        async with app.lifespan():
            await chained(0)
            wall: dict[str, list[float]] = {"chain": [], "bare": []}
            cpu: dict[str, list[float]] = {"chain": [], "bare": []}
            block = 500
            for start in range(0, calls, block):
                for name, fn in (("chain", chained), ("bare", bare)):
                    t0, c0 = time.perf_counter(), time.process_time()
                    for i in range(start, start + block):
                        await fn(i)
                    wall[name].append((time.perf_counter() - t0) / block * 1e6)
                    cpu[name].append((time.process_time() - c0) / block * 1e6)
            breakdown = await per_guard(chain, make_call, max(200, calls // 10))
            stats_text = ""
            if profile:
                prof = cProfile.Profile()
                prof.enable()
                for i in range(min(calls, 3000)):
                    await chained(i)
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
                stats_text = buf.getvalue()
    w = {k: median(v) for k, v in wall.items()}
    c = {k: median(v) for k, v in cpu.items()}
    return {
        "audit_fsync": audit_fsync,
        "calls": calls,
        "chain_us_per_call": round(w["chain"], 1),
        "bare_tool_us_per_call": round(w["bare"], 1),
        "pipeline_us_per_call": round(w["chain"] - w["bare"], 1),
        "pipeline_cpu_us_per_call": round(c["chain"] - c["bare"], 1),
        "per_guard": breakdown,
        "profile": stats_text,
    }


async def fixed(calls: int) -> None:
    """50 warm-up calls, then exactly `calls` chained calls with the audit fsync off; no timing, no output."""
    with bench_app({**raised_overrides(), "audit_fsync": False}) as app:
        async with app.lifespan():
            for i in range(50 + calls):
                await app.registry.chain(make_call(i))


def main(argv: list[str] | None = None) -> int:
    """Measure and print JSON (the profile, if asked, is printed after it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--profile", action="store_true", help="cProfile 3,000 chained calls, top 25 by own time")
    p.add_argument("--fixed", type=int, metavar="N", help="run 50 + N calls (fsync off) for callgrind, print nothing")
    args = p.parse_args(argv)
    configure_logging("warning", "json", stream=sys.stderr)
    if args.fixed is not None:
        anyio.run(fixed, args.fixed)
        return 0
    calls = max(1000, args.calls)
    result = anyio.run(measure, calls, args.profile, True)
    variants = {"default": result}
    if "MCP_DESK_AUDIT_FSYNC" in candidate_settings_keys():
        variants["audit_fsync_off"] = anyio.run(measure, calls, args.profile, False)
    for name, variant in variants.items():
        profile = variant.pop("profile")
        if profile:
            print(f"--- cProfile, {name} ---\n{profile}", file=sys.stderr)
    print(json.dumps({**result, "variants": variants}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
