"""JSON-RPC edge cases against the SDK-backed `/mcp` endpoint through a real uvicorn.

Documented outcomes: a malformed envelope is HTTP 400 with a JSON-RPC error (-32700 parse, -32600 invalid
request); a well-formed request is answered in its stream (-32601 unknown method, -32602 bad params); a
notification or a posted response is a quiet 202. Never a 500, a dropped request, or someone else's result.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from mcp_desk.config import Settings
from tests.httpsec_support import build_app, call_tool, headers, messages, open_session, serving

pytestmark = pytest.mark.anyio

ENVELOPE_ERRORS: dict[str, bytes] = {
    "null id": b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}',
    "object id": b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
    "float id": b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}',
    "boolean id": b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}',
    "NaN id": b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}',
    "batch": b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"ping"}]',
    "empty batch": b"[]",
    "params as a list": b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":[1,2]}',
    "jsonrpc 1.0": b'{"jsonrpc":"1.0","id":11,"method":"ping"}',
    "method not a string": b'{"jsonrpc":"2.0","id":12,"method":5}',
    "scalar body": b'"x"',
    "null body": b"null",
}
PARSE_ERRORS: dict[str, bytes] = {
    "not JSON": b"hello",
    "empty body": b"",
    "invalid UTF-8": b'{"jsonrpc":"2.0","id":10,"method":"ping","params":{"x":"\xff\xfe"}}',
    "100k nested arrays": b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "5000-digit id": b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"ping"}',
    "truncated": b'{"jsonrpc":"2.0","id":1,"method":"pi',
}
IN_STREAM_ERRORS: dict[str, tuple[bytes, int, int]] = {
    "unknown method": (b'{"jsonrpc":"2.0","id":8,"method":"no/such"}', 8, -32601),
    "missing params": (b'{"jsonrpc":"2.0","id":4,"method":"tools/call"}', 4, -32602),
    "arguments not an object": (
        b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":"x"}}',
        6,
        -32602,
    ),
}
QUIET: dict[str, bytes] = {
    "unknown notification": b'{"jsonrpc":"2.0","method":"notifications/whatever"}',
    "posted response": b'{"jsonrpc":"2.0","id":13,"result":{}}',
}


@pytest.fixture
async def session_client() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = Settings()
    app, _ = build_app(settings)
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client, await open_session(client)


@pytest.mark.parametrize("body", ENVELOPE_ERRORS.values(), ids=ENVELOPE_ERRORS.keys())
@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_malformed_envelopes_get_invalid_request(
    session_client: tuple[httpx.AsyncClient, str], body: bytes, era: str
) -> None:
    response = await _post(session_client, body, era)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert response.json()["id"] is None


@pytest.mark.parametrize("body", PARSE_ERRORS.values(), ids=PARSE_ERRORS.keys())
@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_unparseable_bodies_get_parse_error(
    session_client: tuple[httpx.AsyncClient, str], body: bytes, era: str
) -> None:
    response = await _post(session_client, body, era)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_a_lone_surrogate_gets_a_json_rpc_error(session_client: tuple[httpx.AsyncClient, str], era: str) -> None:
    """The session era's parser refuses it (-32700); the stateless era parses it and refuses the request."""
    body = b'{"jsonrpc":"2.0","id":14,"method":"ping","params":{"x":"\\ud800"}}'
    response = await _post(session_client, body, era)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {-32700, -32602}


@pytest.mark.parametrize(("body", "request_id", "code"), IN_STREAM_ERRORS.values(), ids=IN_STREAM_ERRORS.keys())
async def test_bad_requests_are_answered_in_their_stream(
    session_client: tuple[httpx.AsyncClient, str], body: bytes, request_id: int, code: int
) -> None:
    response = await _post(session_client, body, "session")
    assert response.status_code == 200
    [answer] = messages(response)
    assert (answer["id"], answer["error"]["code"]) == (request_id, code)


@pytest.mark.parametrize("body", QUIET.values(), ids=QUIET.keys())
async def test_notifications_and_posted_responses_are_quietly_accepted(
    session_client: tuple[httpx.AsyncClient, str], body: bytes
) -> None:
    response = await _post(session_client, body, "session")
    assert response.status_code == 202
    assert not response.content


@pytest.mark.parametrize(
    ("request_id", "body"),
    [
        (10**40, b'{"jsonrpc":"2.0","id":' + str(10**40).encode() + b',"method":"ping"}'),
        ("a" * 10_000, b'{"jsonrpc":"2.0","id":"' + b"a" * 10_000 + b'","method":"ping"}'),
        (-1, b'{"jsonrpc":"2.0","id":-1,"method":"ping"}'),
    ],
)
async def test_unusual_but_valid_ids_are_echoed_exactly(
    session_client: tuple[httpx.AsyncClient, str], request_id: object, body: bytes
) -> None:
    response = await _post(session_client, body, "session")
    [answer] = messages(response)
    assert answer == {"jsonrpc": "2.0", "id": request_id, "result": {}}


async def test_duplicate_keys_take_the_last_value(session_client: tuple[httpx.AsyncClient, str]) -> None:
    response = await _post(
        session_client, b'{"jsonrpc":"2.0","id":1,"id":2,"method":"nope","method":"ping"}', "session"
    )
    [answer] = messages(response)
    assert answer == {"jsonrpc": "2.0", "id": 2, "result": {}}


async def test_concurrent_clients_only_ever_see_their_own_results() -> None:
    settings = Settings()
    app, _ = build_app(settings)
    seen: list[tuple[str, Any]] = []
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        sessions = [await open_session(client) for _ in range(8)]

        async def run(session: str) -> None:
            for n in range(5):
                response = await call_tool(client, "echo", {"value": f"{session}-{n}"}, session=session)
                seen.append((f"{session}-{n}", messages(response)[-1]["result"]["structuredContent"]["value"]))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for session in sessions:
                    tg.start_soon(run, session)
    assert len(seen) == 40
    assert all(sent == got for sent, got in seen)


async def test_a_thousand_malformed_requests_leave_the_server_healthy() -> None:
    settings = Settings()
    app, _ = build_app(settings)
    bodies = itertools.cycle([*ENVELOPE_ERRORS.values(), *PARSE_ERRORS.values(), *QUIET.values()])
    statuses: set[int] = set()
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        session = await open_session(client)
        with anyio.fail_after(120):
            for body in itertools.islice(bodies, 1000):
                era = "session" if len(statuses) % 2 else "stateless"
                statuses.add((await _post((client, session), body, era)).status_code)
        after = await call_tool(client, "echo", {"value": "still here"}, session=session)
        fresh = await open_session(client)
    assert statuses <= {202, 400}
    assert messages(after)[-1]["result"]["structuredContent"]["value"] == "still here"
    assert fresh != session


async def _post(client_session: tuple[httpx.AsyncClient, str], body: bytes, era: str) -> httpx.Response:
    client, session = client_session
    extra = headers(session=session) if era == "session" else headers(**{"mcp-protocol-version": "2026-07-28"})
    return await client.post("/mcp", content=body, headers=extra)


def test_the_fixture_bodies_are_what_they_claim() -> None:
    assert json.loads(ENVELOPE_ERRORS["batch"])[0]["id"] == 1
