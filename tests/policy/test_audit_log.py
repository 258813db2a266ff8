"""The hash-chained audit file: durability, resume after a crash, and tamper detection."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_desk.errors import StorageUnavailable
from mcp_desk.policy.audit import AuditEvent
from mcp_desk.policy.audit_log import (
    GENESIS,
    JsonlAuditLog,
    _canonical_bytes,
    canonical,
    command_audit_verify,
    record_hash,
    verify_audit_log,
)
from tests.groupcommit_support import flush_in_progress

pytestmark = pytest.mark.anyio


async def durable(sink: JsonlAuditLog, event: AuditEvent) -> None:
    """Append `event` and return once it is on disk, as a write's intent record without a journal is."""
    await sink.append(event)
    await sink.sync()


def _event(n: int, **extra: Any) -> AuditEvent:
    return AuditEvent(
        event_type="tool_result",
        outcome="ok",
        principal="alice",
        role="agent",
        tool="get_note",
        request_id=f"r{n}",
        duration_ms=1.5,
        arguments={"note_id": f"n{n}"},
        **extra,
    )


async def _write_log(path: Path, count: int, key: bytes | None = None) -> JsonlAuditLog:
    sink = JsonlAuditLog(path, hmac_key=key)
    for n in range(count):
        await durable(sink, _event(n))
    await sink.close()
    return sink


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


async def test_records_are_chained_one_json_line_each(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = await _write_log(path, 3)
    records = [json.loads(line) for line in _lines(path)]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:2]]
    assert all(record_hash(r, None) == r["hash"] for r in records)
    assert sink.last_hash == records[-1]["hash"]
    assert records[0]["event_type"] == "tool_result"
    assert records[0]["arguments"] == {"note_id": "n0"}
    assert verify_audit_log(path).ok


@pytest.mark.parametrize("key", [None, b"k" * 32])
async def test_awkward_argument_values_still_verify(tmp_path: Path, key: bytes | None) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path, hmac_key=key)
    awkward: list[dict[str, Any]] = [
        {"title": "caf\u00e9 \u2603 \U0001f600 \x7f", "nested": {"b": [1, 2.5, None, True], "a": ("x", "y")}},
        {"weird": {10: "ten", 2: "two"}, "when": Path("notes") / "x", "big": 10**30, "tiny": 1e-7, "nan": float("nan")},
        {"hash": "not the record's", "prev_hash": "nor this"},
    ]
    for n, arguments in enumerate(awkward):
        await durable(sink, AuditEvent(event_type="tool_result", outcome="ok", request_id=f"r{n}", arguments=arguments))
    await sink.close()
    records = [json.loads(line) for line in _lines(path)]
    assert [r["arguments"]["weird"] for r in records[1:2]] == [{"10": "ten", "2": "two"}]
    assert all(line.isascii() for line in _lines(path))
    assert verify_audit_log(path, key).ok


async def test_the_chain_resumes_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 2)
    await _write_log(path, 2)
    result = verify_audit_log(path)
    assert (result.ok, result.records, result.torn_lines) == (True, 4, ())


async def test_hmac_key_is_needed_to_verify_a_keyed_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 2, key=b"k" * 32)
    assert verify_audit_log(path, b"k" * 32).ok
    wrong = verify_audit_log(path, b"x" * 32)
    assert (wrong.ok, wrong.first_bad_line) == (False, 1)
    assert not verify_audit_log(path).ok


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("tamper", "bad_line", "words"),
    [
        ("edit", 3, "hash mismatch"),
        ("remove", 3, "sequence 4 where 3"),
        ("insert", 3, "sequence 4 where 3"),
        ("reorder", 2, "sequence 3 where 2"),
        ("resequence", 3, "prev_hash"),
        ("blank", 4, "no later record accounts"),
    ],
)
async def test_tampering_is_detected_at_the_first_bad_line(
    tmp_path: Path, tamper: str, bad_line: int, words: str
) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 5)
    lines = _lines(path)
    if tamper == "edit":
        lines[2] = lines[2].replace('"outcome":"ok"', '"outcome":"denied"')
    elif tamper == "remove":
        del lines[2]
    elif tamper == "insert":
        lines.insert(2, lines[3])
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "resequence":
        del lines[2]
        for i in range(2, len(lines)):
            record = json.loads(lines[i])
            record["seq"] -= 1
            record["hash"] = record_hash(record, None)
            lines[i] = json.dumps(record) + "\n"
    else:
        lines.insert(3, "\n")
    _rewrite(path, lines)
    result = verify_audit_log(path)
    assert not result.ok
    assert result.first_bad_line == bad_line
    assert result.reason is not None
    assert words in result.reason


async def test_a_torn_last_line_is_tolerated_reported_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 3)
    with path.open("a") as handle:
        handle.write(_lines(path)[-1][:40])  # a crash in the middle of writing record 4
    crashed = verify_audit_log(path)
    assert (crashed.ok, crashed.records, crashed.torn_lines) == (True, 3, (4,))

    await _write_log(path, 2)
    result = verify_audit_log(path)
    assert (result.ok, result.records, result.torn_lines) == (True, 5, (4,))
    assert json.loads(_lines(path)[4])["torn_after_seq"] == 3
    out = io.StringIO()
    assert command_audit_verify(path, None, out) == 0
    assert "warning: line 4 is a torn record" in out.getvalue()


async def test_a_log_holding_only_a_torn_line_resumes_from_genesis(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"seq":1,"ev')
    await _write_log(path, 1)
    assert verify_audit_log(path).torn_lines == (1,)
    assert verify_audit_log(path).records == 1


async def test_a_torn_line_far_back_with_long_records_is_found_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path)
    for n in range(3):
        await durable(sink, _event(n, detail="x" * 50_000))
    await sink.close()
    with path.open("a") as handle:
        handle.write('{"seq":4,')
    await _write_log(path, 1)
    assert verify_audit_log(path).ok
    assert json.loads(_lines(path)[-1])["seq"] == 4


async def test_a_fake_torn_claim_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 2)
    lines = _lines(path)
    record = json.loads(lines[1])
    record["torn_after_seq"] = 1
    record["hash"] = record_hash(record, None)
    lines[1] = json.dumps(record) + "\n"
    _rewrite(path, lines)
    result = verify_audit_log(path)
    assert (result.ok, result.first_bad_line) == (False, 2)


async def test_newlines_and_control_characters_in_arguments_cannot_forge_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    forged = '{"seq":2,"event_type":"tool_result","outcome":"ok","prev_hash":"x","hash":"y"}'
    sink = JsonlAuditLog(path)
    evil = f"title\n{forged}\r\n\x00\x1b[2J\u2028\u2029"
    await durable(sink, _event(0, detail=evil))
    await durable(sink, AuditEvent(event_type="tool_result", outcome="ok", arguments={"title": evil, evil: 1}))
    await sink.close()
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 3
    assert lines[-1] == b""
    assert all(32 <= byte < 127 for line in lines for byte in line)
    assert json.loads(lines[1])["arguments"]["title"] == evil
    assert verify_audit_log(path).records == 2


async def test_concurrent_writers_produce_one_unbroken_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path, fsync=False)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(durable, sink, _event(n))
    await sink.close()
    result = verify_audit_log(path)
    assert (result.ok, result.records) == (True, 50)


async def test_a_failed_write_raises_marks_the_sink_unwritable_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path)
    await durable(sink, _event(0))
    fd = sink._fd
    assert fd is not None
    os.close(fd)
    sink._fd = os.open(path, os.O_RDONLY)  # writes now fail like a read-only volume
    with pytest.raises(StorageUnavailable):
        await durable(sink, _event(1))
    assert not sink.writable()
    os.close(sink._fd)
    sink._fd = None
    await durable(sink, _event(2))
    assert sink.writable()
    await sink.flush()
    await sink.close()
    assert verify_audit_log(path).records == 2


async def test_flush_and_close_before_any_write_are_harmless(tmp_path: Path) -> None:
    sink = JsonlAuditLog(tmp_path / "sub" / "audit.jsonl")
    await sink.flush()
    await sink.close()
    await sink.open()
    await sink.open()
    await sink.close()
    assert (tmp_path / "sub" / "audit.jsonl").read_text() == ""


async def test_verify_command_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_log(path, 2)
    out = io.StringIO()
    assert command_audit_verify(path, None, out) == 0
    assert "ok: 2 records" in out.getvalue()
    _rewrite(path, _lines(path)[::-1])
    out = io.StringIO()
    assert command_audit_verify(path, None, out) == 1
    assert "line 1" in out.getvalue()
    assert command_audit_verify(tmp_path / "missing.jsonl", None, io.StringIO()) == 2


async def test_cost_of_a_durable_record_is_reported(tmp_path: Path) -> None:
    """Benchmark, printed not asserted: fsync per record versus without, through the worker thread."""
    costs = {}
    for fsync in (True, False):
        sink = JsonlAuditLog(tmp_path / f"audit-{fsync}.jsonl", fsync=fsync)
        await durable(sink, _event(0))
        start = time.perf_counter()
        for n in range(50):
            await durable(sink, _event(n))
        costs[fsync] = (time.perf_counter() - start) / 50
        await sink.close()
    sys.stdout.write(
        f"\naudit: {costs[True] * 1e6:.0f} us per record with fsync, {costs[False] * 1e6:.0f} us without\n"
    )


async def test_syncs_queued_behind_an_fsync_share_the_next_one_and_fail_together(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path)
    await durable(sink, _event(0))
    errors: list[Exception] = []

    async def write(n: int) -> None:
        try:
            await durable(sink, _event(n))
        except StorageUnavailable as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        # As if an fsync were running: the records are in the file, their syncs queue up behind it.
        async with anyio.create_task_group() as tg, flush_in_progress(sink.syncs):
            for n in range(1, 6):
                tg.start_soon(write, n)
            await anyio.wait_all_tasks_blocked()
            assert (sink.syncs.queued, sink.unsynced) == (5, 5)
            assert len(_lines(path)) == 6
            real_fd = sink._fd
            assert real_fd is not None
            sink._fd = 1_000_000  # not an open descriptor: the shared fsync fails like a failing disk
        sink._fd = real_fd
    assert len(errors) == 5
    assert not sink.writable()
    await durable(sink, _event(6))
    assert (sink.writable(), sink.unsynced) == (True, 0)
    await sink.close()
    result = verify_audit_log(path)
    assert (result.ok, result.records) == (True, 7)


async def test_a_record_that_cannot_be_written_is_refused_alone_and_the_file_cut_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path, fsync=False)
    await sink.append(_event(0))
    fd = sink._fd
    assert fd is not None
    os.close(fd)
    sink._fd = os.open(path, os.O_RDONLY)  # writes now fail like a read-only volume
    with pytest.raises(StorageUnavailable):
        await sink.append(_event(1))
    os.close(sink._fd)
    sink._fd = None
    await sink.append(_event(2))
    await sink.close()
    result = verify_audit_log(path)
    assert (result.ok, result.records) == (True, 2)


async def test_periodic_sync_makes_unawaited_records_durable(tmp_path: Path) -> None:
    sink = JsonlAuditLog(tmp_path / "audit.jsonl")
    await sink.append(_event(0))
    assert sink.unsynced == 1
    with anyio.fail_after(10):
        async with sink.syncing(0.001):
            while sink.unsynced:
                await anyio.wait_all_tasks_blocked()  # the background round is the only one that can sync
    assert sink.unsynced == 0
    await sink.close()


async def test_without_fsync_sync_returns_at_once_and_nothing_runs_in_the_background(tmp_path: Path) -> None:
    sink = JsonlAuditLog(tmp_path / "audit.jsonl", fsync=False)
    async with sink.syncing(0.001):
        await durable(sink, _event(0))
        assert (sink.unsynced, sink.syncs.queued) == (1, 0)
    await sink.close()
    assert sink.unsynced == 0


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(arguments=st.dictionaries(st.text(max_size=8), _JSONISH, max_size=5), duration=st.floats(0, 1e9))
def test_the_fast_canonical_bytes_are_the_stdlib_canonical_bytes(arguments: dict[str, Any], duration: float) -> None:
    record = {"seq": 1, "event_type": "tool_result", "duration_ms": round(duration, 3), "arguments": arguments}
    record["prev_hash"] = GENESIS
    assert _canonical_bytes(record) == canonical(json.loads(json.dumps(record)))


async def test_close_writes_the_records_queued_behind_a_flush_before_it_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditLog(path)
    await durable(sink, _event(0))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, flush_in_progress(sink.syncs):
            for n in range(1, 4):
                tg.start_soon(durable, sink, _event(n))
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(sink.close)
            await anyio.wait_all_tasks_blocked()
    assert sink._fd is None
    result = verify_audit_log(path)
    assert (result.ok, result.records) == (True, 4)


async def test_replicas_sharing_a_folder_each_write_their_own_chain(tmp_path: Path) -> None:
    from mcp_desk.config import load_settings

    folder = tmp_path / "audit"
    settings = {name: load_settings(env_file=None, audit_log_path=folder, replica_id=name) for name in ("a", "b")}
    assert settings["a"].audit_log_folder == folder
    assert settings["b"].resolved_audit_log_path == folder / "b.jsonl"
    sink_a = JsonlAuditLog(settings["a"].resolved_audit_log_path, replica="a")
    sink_b = JsonlAuditLog(settings["b"].resolved_audit_log_path, replica="b")
    async with anyio.create_task_group() as tg:  # interleaved writes: no lock between the two chains
        for n in range(20):
            tg.start_soon(durable, sink_a, _event(n))
            tg.start_soon(durable, sink_b, _event(n))
    await sink_a.close()
    await sink_b.close()
    for name in ("a", "b"):
        records = [json.loads(line) for line in _lines(folder / f"{name}.jsonl")]
        assert [r["seq"] for r in records] == list(range(1, 21))
        assert {r["replica"] for r in records} == {name}
    out = io.StringIO()
    assert command_audit_verify(folder, None, out) == 0
    assert out.getvalue().count("ok: 20 records verified") == 2


def test_a_file_name_or_an_existing_file_stays_one_chain(tmp_path: Path) -> None:
    from mcp_desk.config import load_settings

    named = load_settings(env_file=None, audit_log_path=tmp_path / "audit.jsonl", replica_id="a")
    assert (named.audit_log_folder, named.resolved_audit_log_path) == (None, tmp_path / "audit.jsonl")
    existing = tmp_path / "auditlog"
    existing.write_text("")
    plain = load_settings(env_file=None, audit_log_path=existing, replica_id="a")
    assert (plain.audit_log_folder, plain.resolved_audit_log_path) == (None, existing)
    default = load_settings(env_file=None, storage_path=tmp_path / "data", replica_id="a")
    assert default.resolved_audit_log_path == tmp_path / "data" / "audit.jsonl"


async def test_verify_names_the_broken_chain_among_several(tmp_path: Path) -> None:
    folder = tmp_path / "chains"
    for name in ("r1", "r2", "r3"):
        await _write_log(folder / f"{name}.jsonl", 3)
    (folder / "notes.txt").write_text("not a chain")
    lines = _lines(folder / "r2.jsonl")
    _rewrite(folder / "r2.jsonl", [lines[0], lines[2]])
    extra = tmp_path / "old.jsonl"
    await _write_log(extra, 2)
    out = io.StringIO()
    assert command_audit_verify([folder, extra], None, out) == 1
    report = out.getvalue()
    assert f"FAILED: {folder / 'r2.jsonl'} line 2: sequence 3 where 2" in report
    assert f"ok: 3 records verified in {folder / 'r1.jsonl'}" in report
    assert f"ok: 3 records verified in {folder / 'r3.jsonl'}" in report
    assert f"ok: 2 records verified in {extra}" in report
    assert "notes.txt" not in report


def test_verify_refuses_a_folder_without_chains(tmp_path: Path) -> None:
    out = io.StringIO()
    assert command_audit_verify([tmp_path], None, out) == 2
    assert f"no chain files (*.jsonl) in {tmp_path}" in out.getvalue()
