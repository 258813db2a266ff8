"""The per-principal request limit over real Streamable HTTP: sessions and protocol eras share one budget."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import error, ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import add_key, connect

pytestmark = pytest.mark.anyio

RPM = 6
RETRY = re.compile(r"retry after (\d+) seconds?")


def refused_with_retry(message: str) -> int:
    """The retry time of a `rate_limited:` refusal (fails the test for any other message)."""
    assert message.startswith("rate_limited:"), message
    found = RETRY.search(message)
    assert found is not None, message
    seconds = int(found.group(1))
    assert 1 <= seconds <= 60
    return seconds


def refused_total(metrics: str) -> float:
    """The sum of mcp_desk_rate_limited_total over its scopes."""
    return sum(float(value) for value in re.findall(r"^mcp_desk_rate_limited_total\{[^}]*\} (\S+)$", metrics, re.M))


async def test_a_burst_beyond_the_limit_is_refused_for_every_session_and_era_of_the_principal_and_counted(
    start_http: StartHttp, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    alice, bob = add_key(keys, "alice", "agent"), add_key(keys, "bob", "agent")
    server = start_http(MCP_DESK_API_KEYS_FILE=str(keys), MCP_DESK_RATE_LIMIT_RPM=str(RPM))
    note = {"title": "t", "body": "b"}
    with anyio.fail_after(120):
        async with (
            connect(server.url, alice) as first,
            connect(server.url, alice) as second,
            connect(server.url, alice, "2026-07-28") as stateless,
            connect(server.url, bob, "2026-07-28") as other,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.health_port}") as sidecar,
        ):
            before = refused_total((await sidecar.get("/metrics")).text)
            usage = ok(await first.call_tool("get_usage", {}))
            if usage["minute"]["resets_in_seconds"] < 10:  # keep the burst inside one minute window of the real clock
                await anyio.sleep(usage["minute"]["resets_in_seconds"] + 0.5)
                usage = ok(await first.call_tool("get_usage", {}))
            window = usage["minute"]["resets_at"]
            assert usage["minute"]["requests_limit"] == RPM
            ok(await first.call_tool("create_note", note))
            ok(await second.call_tool("create_note", note))
            ok(await stateless.call_tool("create_note", note))
            ok(await second.call_tool("create_note", note))
            usage = ok(await stateless.call_tool("get_usage", {}))
            assert usage["principal"] == "alice"
            assert usage["minute"]["requests_remaining"] == 0
            assert usage["minute"]["resets_at"] == window

            retries = []
            for client in (first, second, stateless, first):
                retries.append(refused_with_retry(error(await client.call_tool("create_note", note))))
            assert max(retries) <= usage["minute"]["resets_in_seconds"] + 1

            assert ok(await other.call_tool("create_note", note))["owner"] == "bob"
            metrics = (await sidecar.get("/metrics")).text
            assert refused_total(metrics) - before >= len(retries)
            assert 'mcp_desk_tool_calls_total{outcome="rate_limited",tool="create_note"}' in metrics
    assert server.stop() == 0
    log = server.log.read_text()
    assert alice not in log
    assert bob not in log
