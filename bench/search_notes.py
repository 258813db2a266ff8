"""`search_notes` latency at 10k / 100k / 1M notes, through the real tool path.

Notes are seeded through mcp-desk's own storage layer (its migrations, its INSERT, its FTS
triggers) in large transactions, one database per size, kept under bench/results/search/ so later
runs reuse them. Each size is then searched with the in-memory `mcp`
client against the real app (registry, guards, storage), and, for comparison, with the storage
call alone, so what bounds the latency (SQLite's FTS ranking or the layers above) is visible.

Queries come in five kinds, because their cost differs by orders of magnitude: a very common
word (matches a large share of all notes, all of which FTS5 must rank), a mid-frequency word, a
rare word, two words, and a short prefix.

    python -m bench.search_notes [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from bench.common import RESULTS, ROOT, raised_overrides, summarize_ms

SEED = 20260728
TAGS = ["vpn", "email", "printer", "sso", "disk", "database", "password", "network", "billing", "onboarding"]
KINDS = ("common", "mid", "rare", "two_words", "prefix")


def vocabulary() -> list[str]:
    """Words from the sample runbooks, most frequent first (a natural Zipf-like ranking)."""
    counts: dict[str, int] = {}
    for path in sorted((ROOT / "docs" / "kb").glob("*.md")):
        for word in re.findall(r"[a-z]{3,}", path.read_text(encoding="utf-8").lower()):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    extra = [f"{a}{b}" for a in ("acme", "ticket", "host", "user") for b in ("alpha", "bravo", "delta", "omega")]
    return words + extra


def note_rows(vocab: list[str], start: int, count: int, owner: str) -> Iterator[tuple[Any, ...]]:
    """Deterministic synthetic notes: Zipf-weighted words, 40-80 word bodies, two tags."""
    rng = random.Random(SEED + start)
    cum: list[float] = []
    total = 0.0
    for rank in range(len(vocab)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    ts = "2026-01-01T00:00:00.000000Z"
    for i in range(start, start + count):
        title = " ".join(rng.choices(vocab, cum_weights=cum, k=6)).capitalize()
        body = " ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(40, 80)))
        tags = json.dumps(rng.sample(TAGS, 2))
        yield (f"note_{i:016x}", owner, title, body, tags, ts, ts)


def queries(vocab: list[str], per_kind: int) -> list[tuple[str, str]]:
    """(kind, query) pairs, interleaved so every kind is spread over the run."""
    rng = random.Random(SEED)
    n = len(vocab)
    pools = {
        "common": vocab[:10],
        "mid": vocab[100:300],
        "rare": vocab[max(0, n - 400) : n - 16],
        "prefix": [w[:3] + "*" for w in vocab[50:200] if len(w) >= 5],  # prefixes are opt-in with a trailing *
    }
    out: list[tuple[str, str]] = []
    for _ in range(per_kind):
        out.append(("common", rng.choice(pools["common"])))
        out.append(("mid", rng.choice(pools["mid"])))
        out.append(("rare", rng.choice(pools["rare"])))
        out.append(("two_words", f"{rng.choice(pools['common'])} {rng.choice(pools['mid'])}"))
        out.append(("prefix", rng.choice(pools["prefix"])))
    return out


INSERT = "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)"


async def grow(storage: Any, vocab: list[str], have: int, want: int, owner: str) -> None:
    """Insert notes have..want through the storage's writer connection, 20k per transaction."""
    batch = 20_000
    for start in range(have, want, batch):
        rows = list(note_rows(vocab, start, min(batch, want - start), owner))

        def tx(conn: Any, rows: list[tuple[Any, ...]] = rows) -> None:
            conn.executemany(INSERT, rows)

        await storage.w.transaction(tx)
        print(f"  seeded {start + len(rows):,} notes", file=sys.stderr)


def _summaries(samples: dict[str, list[float]]) -> dict[str, Any]:
    every = [s for values in samples.values() for s in values]
    return {"all": summarize_ms(every), **{k: summarize_ms(v) for k, v in samples.items()}}


async def measure_size(app: Any, client: Any, qs: list[tuple[str, str]], owner: str) -> dict[str, Any]:
    """Time each query through the tool path and through storage alone."""
    from mcp_desk.storage.base import NoteScope

    scope = NoteScope(owner=owner)
    for _, q in qs[:20]:
        await client.call_tool("search_notes", {"query": q, "limit": 20})
    tool: dict[str, list[float]] = {k: [] for k in KINDS}
    store: dict[str, list[float]] = {k: [] for k in KINDS}
    hits: dict[str, int] = {}
    for kind, q in qs:
        t0 = time.perf_counter()
        result = await client.call_tool("search_notes", {"query": q, "limit": 20})
        tool[kind].append(time.perf_counter() - t0)
        if result.is_error:
            raise RuntimeError(f"search_notes {q!r} failed: {result.content}")
        t0 = time.perf_counter()
        await app.storage.search_notes(scope, q, cursor=None, limit=20)
        store[kind].append(time.perf_counter() - t0)
    from mcp_desk.storage.sqlite.search import fts_query

    for kind, q in qs[:5]:
        row = await app.storage.r.run(
            lambda c, q=q: c.execute(
                "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH ?", (fts_query(q),)
            ).fetchone()
        )
        hits[kind] = int(row[0])
    return {"tool": _summaries(tool), "storage": _summaries(store), "matches_per_kind": hits}


def read_marker(marker: Path) -> dict[str, Any]:
    """What a database directory was seeded with ({} when new; creates the directory)."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = json.loads(marker.read_text()) if marker.exists() else {}
    return state


def reset(workdir: Path) -> None:
    """Forget a database seeded for another size or schema."""
    for path in workdir.glob("*"):
        if path.is_file():
            path.unlink()


def write_marker(marker: Path, state: dict[str, Any]) -> None:
    """Record a finished seed."""
    marker.write_text(json.dumps(state))


async def measure_one(size: int, per_kind: int, workdir: Path) -> dict[str, Any]:
    """Seed (or reuse) a database of `size` notes and measure it."""
    from mcp import Client

    from mcp_desk.app import create_app
    from mcp_desk.config import load_settings
    from mcp_desk.storage.sqlite.migrations import MIGRATIONS

    settings = load_settings(
        env_file=None,
        **raised_overrides(),
        storage_path=workdir,
        docs_path=ROOT / "docs" / "kb",
        export_path=workdir / "exports",
    )
    owner = settings.stdio_principal
    app = create_app(settings, transport="memory")
    marker = workdir / "seeded.json"
    vocab = vocabulary()
    state = read_marker(marker)
    if state and state != {"notes": size, "schema": len(MIGRATIONS)}:
        print(f"  {workdir} was seeded for {state}; seeding again", file=sys.stderr)
        reset(workdir)
        state = {}
    async with app.lifespan(), Client(app.server, mode="legacy") as client:
        if not state:
            count = await app.storage.r.run(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()[0])
            t0 = time.perf_counter()
            await grow(app.storage, vocab, count, size, owner)
            print(f"  seeded {size:,} notes in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            write_marker(marker, {"notes": size, "schema": len(MIGRATIONS)})
        result = await measure_size(app, client, queries(vocab, per_kind), owner)
    r = result["tool"]["all"]
    print(f"  {size:>9,} notes: p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms", file=sys.stderr)
    return result


async def run(sizes: list[int], per_kind: int, workdir: Path) -> dict[str, Any]:
    """Measure every size, smallest first, each in its own database under `workdir`."""
    return {str(size): await measure_one(size, per_kind, workdir / f"n{size}") for size in sorted(sizes)}


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--queries", type=int, default=200, help="timed queries per size (spread over 5 kinds)")
    p.add_argument("--workdir", type=Path, default=RESULTS / "search")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result = anyio.run(run, sizes, max(1, args.queries // len(KINDS)), args.workdir)
    print(json.dumps(result))  # one line, last: logs of the app may precede it on stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
