"""Per-call cost of mcp-desk's guard chain alone, without MCP, transport or storage.

A no-op tool shaped like `create_note` (same arguments, echoes them back so redaction has a real
result to scan) is added to the app; its `ToolCall` is pushed through the app's own chain (every
guard app.py wires, in its order) many times. The same tool called directly, with the endpoint's
`model_dump`, is the floor; the difference is the pipeline's cost.

    python -m bench.pipeline_cost [--calls 20000] [--profile]
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
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from bench.common import RAISED_SETTINGS, ROOT, summarize_ms
from bench.loadgen import NOTE_BODY
from server.app import create_app
from server.config import load_settings
from server.domain.principal import ALL_SCOPES, Principal
from server.logging import configure_logging
from server.policy.pipeline import READ_ONLY, ToolCall, ToolSpec
from server.tools.env import Body, Tags, Title


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


ARGUMENTS = {"title": "Pipeline cost probe", "body": NOTE_BODY, "tags": ["bench", "vpn"]}


async def measure(calls: int, profile: bool, audit_fsync: bool = False) -> dict[str, Any]:
    """Time the chain and the bare tool, interleaved in blocks of 1,000."""
    spec = ToolSpec(name="bench_noop", fn=bench_noop, scope="notes:write", annotations=READ_ONLY)
    with tempfile.TemporaryDirectory(prefix="mcp-desk-pipeline-") as tmp:
        settings = load_settings(
            env_file=None,
            storage_path=Path(tmp),
            docs_path=ROOT / "docs" / "kb",
            export_path=Path(tmp) / "exports",
            audit_fsync=audit_fsync,
            **RAISED_SETTINGS,
        )
        configure_logging("warning", "json")
        app = create_app(settings, transport="memory", extra_tools=(spec,))
        chain = app.registry.chain
        principal = Principal(id="bench", role="admin", scopes=ALL_SCOPES, transport="http")

        def make_call(i: int) -> ToolCall:
            return ToolCall(spec=spec, principal=principal, arguments=dict(ARGUMENTS), request_id=f"{i:016x}")

        async def chained(i: int) -> Any:
            return await chain(make_call(i))

        async def bare(i: int) -> Any:
            make_call(i)
            result = await bench_noop(None, **ARGUMENTS)  # type: ignore[arg-type]
            return result.model_dump(mode="json")

        async with app.lifespan():
            await chained(0)
            per_chain: list[float] = []
            per_bare: list[float] = []
            block = 1000
            for start in range(0, calls, block):
                for fn, out in ((chained, per_chain), (bare, per_bare)):
                    t0 = time.perf_counter()
                    for i in range(start, start + block):
                        await fn(i)
                    out.append((time.perf_counter() - t0) / block)
            stats_text = ""
            if profile:
                prof = cProfile.Profile()
                prof.enable()
                for i in range(min(calls, 5000)):
                    await chained(i)
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
                stats_text = buf.getvalue()
    chain_us = sorted(x * 1e6 for x in per_chain)
    bare_us = sorted(x * 1e6 for x in per_bare)
    median_chain = chain_us[len(chain_us) // 2]
    median_bare = bare_us[len(bare_us) // 2]
    return {
        "calls": calls,
        "chain_us_per_call": round(median_chain, 1),
        "bare_tool_us_per_call": round(median_bare, 1),
        "pipeline_us_per_call": round(median_chain - median_bare, 1),
        "chain_block_ms": summarize_ms([x / 1e6 for x in chain_us]),
        "profile": stats_text,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print JSON (the profile, if asked, is printed after it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--profile", action="store_true", help="cProfile 5,000 chained calls, top 25 by own time")
    p.add_argument(
        "--audit-fsync",
        action="store_true",
        help="fsync every audit record (the server's default); off by default here: that is disk time, not pipeline "
        "CPU, and the HTTP section measures it",
    )
    args = p.parse_args(argv)
    result = anyio.run(measure, max(1000, args.calls), args.profile, args.audit_fsync)
    result["audit_fsync"] = args.audit_fsync
    profile = result.pop("profile")
    print(json.dumps(result))
    if profile:
        print(profile, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
