"""Hold a group commit as if a flush were running, so tests can queue items behind it without sleeping."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from mcp_desk.groupcommit import GroupCommit


@asynccontextmanager
async def flush_in_progress(commit: GroupCommit[Any, Any]) -> AsyncIterator[None]:
    """Inside the block a step runs in the commit's worker thread, holding it; it ends when the block does."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(commit.exclusive, hold, thread=True))
        assert await anyio.to_thread.run_sync(started.wait, 10)
        try:
            yield
        finally:
            release.set()
