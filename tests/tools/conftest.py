"""Fixtures for tool tests that move time: an app whose every stored time comes from a clock the test sets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp import Client

from mcp_desk.app import App, create_app
from tests.clock import ManualUtcClock
from tests.conftest import MakeSettings, connected


@pytest.fixture
def clock() -> ManualUtcClock:
    return ManualUtcClock()  # 2026-01-05 09:00 UTC


@pytest.fixture
def app(make_settings: MakeSettings, clock: ManualUtcClock) -> App:
    return create_app(make_settings(), transport="memory", clock=clock)


@pytest.fixture
async def desk(app: App) -> AsyncIterator[Client]:
    async with connected(app) as client:
        yield client
