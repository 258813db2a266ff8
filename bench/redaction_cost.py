"""CPU cost of redacting one tool result: `Redactor.value` (the JSON screen) against the full walk.

The results are built the way the tools build them (domain models, `model_dump(mode="json")`):
a `list_notes` page of 20 notes without secrets (every read's common case), the same page with
search snippets, and the same page with one secret in one title (the walk runs). Each variant is
timed in rounds of `--calls` calls with `time.process_time` (CPU of this process), interleaved
with the full walk (`scrub(result, redactor.text)`, what `value` did before the screen); the
medians of `--rounds` rounds are printed as JSON, in microseconds per call.

    python -m bench.redaction_cost [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import median
from bench.loadgen import NOTE_BODY
from mcp_desk.domain.models import NoteSummary, Page
from mcp_desk.policy.redaction import Redactor, scrub
from mcp_desk.storage.cursor import encode_cursor


def note_page(*, snippets: bool = False, secret: bool = False) -> dict[str, Any]:
    """A 20-note `list_notes` result as the tool returns it to the guards."""
    items = [
        NoteSummary(
            id=f"note_{i:016x}",
            title=f"VPN drops on hotel Wi-Fi, case {i}" + (" password=hunter2" if secret and i == 7 else ""),
            tags=["bench", "vpn"],
            version=1,
            updated_at=f"2026-12-06T20:{i:02d}:27.123456Z",
            snippet=NOTE_BODY[:120] if snippets else None,
        )
        for i in range(20)
    ]
    cursor = encode_cursor(["notes", items[-1].updated_at, 20])
    page: dict[str, Any] = Page[NoteSummary](items=items, next_cursor=cursor).model_dump(mode="json")
    return page


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    """CPU microseconds per call of `fn`, over `calls` calls."""
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    """Measure every variant and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    redactor = Redactor()
    variants = {
        "list_notes_20": note_page(),
        "list_notes_20_snippets": note_page(snippets=True),
        "list_notes_20_one_secret": note_page(secret=True),
    }
    out: dict[str, Any] = {"calls": args.calls, "rounds": args.rounds, "clock": "time.process_time"}
    for name, result in variants.items():
        assert redactor.value(result) == scrub(result, redactor.text)
        screened: list[float] = []
        walked: list[float] = []
        for _ in range(args.rounds):
            screened.append(per_call_us(lambda r=result: redactor.value(r), args.calls))
            walked.append(per_call_us(lambda r=result: scrub(r, redactor.text), args.calls))
        out[name] = {"value_us": round(median(screened), 1), "walk_us": round(median(walked), 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
