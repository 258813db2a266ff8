"""Group commit: one flush per batch, each caller gets only its own outcome, nothing is lost at close."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import pytest

from mcp_desk.groupcommit import Entry, GroupCommit
from tests.groupcommit_support import flush_in_progress

pytestmark = pytest.mark.anyio


class Recorder:
    """A flush that records its batches and the thread it ran in; items starting with "bad" fail alone."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()

    def __call__(self, batch: Sequence[Entry[str, str]]) -> None:
        self.batches.append([entry.item for entry in batch])
        self.threads.add(threading.get_ident())
        for entry in batch:
            if entry.item.startswith("bad"):
                entry.error = ValueError(entry.item)
            else:
                entry.result = entry.item.upper()


async def test_a_lone_item_is_flushed_in_a_worker_thread_and_returns_its_result() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder)
    assert await commit.submit("a") == "A"
    assert recorder.batches == [["a"]]
    assert threading.get_ident() not in recorder.threads


async def test_without_a_thread_the_flush_runs_on_the_event_loop() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder, thread=False, fast_acquire=True)
    assert await commit.submit("a") == "A"
    assert recorder.threads == {threading.get_ident()}


async def test_items_queued_during_a_flush_go_together_in_the_next_batch() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder)
    results: dict[str, str] = {}

    async def submit(item: str) -> None:
        results[item] = await commit.submit(item)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, flush_in_progress(commit):
            for item in ("b", "c", "d"):
                tg.start_soon(submit, item)
            await anyio.wait_all_tasks_blocked()
            assert commit.queued == 3
            assert recorder.batches == []
    assert recorder.batches == [["b", "c", "d"]]
    assert results == {"b": "B", "c": "C", "d": "D"}


async def test_an_error_in_one_item_reaches_only_its_own_caller() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder)
    outcomes: dict[str, object] = {}

    async def submit(item: str) -> None:
        try:
            outcomes[item] = await commit.submit(item)
        except ValueError as exc:
            outcomes[item] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, flush_in_progress(commit):
            for item in ("ok1", "bad", "ok2"):
                tg.start_soon(submit, item)
            await anyio.wait_all_tasks_blocked()
    assert recorder.batches == [["ok1", "bad", "ok2"]]
    assert outcomes["ok1"] == "OK1"
    assert outcomes["ok2"] == "OK2"
    assert isinstance(outcomes["bad"], ValueError)
    assert str(outcomes["bad"]) == "bad"


async def test_an_exception_escaping_the_flush_fails_every_item_of_that_batch_only() -> None:
    calls: list[list[str]] = []

    def flush(batch: Sequence[Entry[str, str]]) -> None:
        calls.append([entry.item for entry in batch])
        if len(calls) == 1:
            raise OSError("disk gone")
        for entry in batch:
            entry.result = "kept"

    commit: GroupCommit[str, str] = GroupCommit(flush)
    with pytest.raises(OSError, match="disk gone"):
        await commit.submit("first")
    assert await commit.submit("second") == "kept"
    assert calls == [["first"], ["second"]]


async def test_close_drains_queued_items_then_refuses_new_ones() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder)
    results: list[str] = []

    async def submit(item: str) -> None:
        results.append(await commit.submit(item))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, flush_in_progress(commit):
            tg.start_soon(submit, "queued")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(commit.close)
            await anyio.wait_all_tasks_blocked()
    assert results == ["QUEUED"]
    assert recorder.batches == [["queued"]]
    with pytest.raises(RuntimeError, match="closed"):
        await commit.submit("late")
    assert commit.queued == 0


async def test_exclusive_flushes_what_is_queued_before_running_its_step() -> None:
    recorder = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(recorder)
    seen: list[list[list[str]]] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, flush_in_progress(commit):
            tg.start_soon(commit.submit, "a")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(commit.exclusive, lambda: seen.append(list(recorder.batches)))
            await anyio.wait_all_tasks_blocked()
    assert seen == [[["a"]]]


async def test_a_base_exception_in_the_flush_fails_the_batch_and_still_propagates() -> None:
    def flush(batch: Sequence[Entry[str, str]]) -> None:
        raise KeyboardInterrupt

    commit: GroupCommit[str, str] = GroupCommit(flush, thread=False)
    with pytest.raises(KeyboardInterrupt):
        await commit.submit("a")
