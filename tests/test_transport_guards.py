"""Transport guards through a real uvicorn: Host, Origin, query credentials, body cap, body deadline, concurrency."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from mcp_desk.config import Settings
from mcp_desk.transport_guards import parse_authority, parse_origin
from tests.httpsec_support import build_app, headers, initialize_body, port_of, send_while_reading, serving

pytestmark = pytest.mark.anyio

INIT = json.dumps(initialize_body()).encode()


def _settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


async def _raw(base: str, request: bytes) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or 2 s of silence."""
    port = port_of(base)
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        return await _read_all(stream)


async def _read_all(stream: SocketStream) -> bytes:
    data = b""
    with anyio.move_on_after(2):
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    return data


def _post(host_lines: bytes, body: bytes = INIT) -> bytes:
    return (
        b"POST /mcp HTTP/1.1\r\n" + host_lines + b"Accept: application/json, text/event-stream\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
async def base() -> AsyncIterator[str]:
    settings = _settings(max_request_body_bytes=1024 * 1024, request_body_timeout_seconds=0.5)
    app, _ = build_app(settings)
    async with serving(app, settings) as url:
        yield url


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:{port}/x",
        "user@127.0.0.1:{port}",
        "127.0.0.1:{port}@evil.example",
        "",
        " ",
        "127.0.0.1:99999",
        "127.0.0.1:0",
        "127.0.0.1:{port}:{port}",
        "127.0.0.1:-1",
        "127.0.0.1:{port}.evil.example",
        "evil.example",
        "evil.example:{port}",
        "localhost.:{port}",
        "127.0.0.1:{port}?x",
        "127.0.0.1:{port}#x",
        "127.0.0.1\\:{port}",
        "[::1",
        "[not-ip]:{port}",
        "127.0.0.1:{port},evil.example",
    ],
)
async def test_malformed_or_foreign_host_is_refused_with_421(base: str, value: str) -> None:
    port = base.rsplit(":", 1)[1]
    answer = await _raw(base, _post(b"Host: " + value.format(port=port).encode() + b"\r\n"))
    assert _status(answer) == 421


async def test_two_host_headers_are_refused_with_421(base: str) -> None:
    port = base.rsplit(":", 1)[1].encode()
    answer = await _raw(base, _post(b"Host: 127.0.0.1:" + port + b"\r\nHost: evil.example\r\n"))
    assert _status(answer) in {400, 421}  # the HTTP parser may already refuse it; never served
    answer = await _raw(base, _post(b"Host: 127.0.0.1:" + port + b"\r\nHost: 127.0.0.1:" + port + b"\r\n"))
    assert _status(answer) in {400, 421}


async def test_a_missing_host_header_is_refused(base: str) -> None:
    answer = await _raw(base, _post(b"").replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    assert _status(answer) == 421


@pytest.mark.parametrize("value", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
async def test_allowed_hosts_with_any_port_are_served(base: str, value: str) -> None:
    port = base.rsplit(":", 1)[1]
    answer = await _raw(base, _post(b"Host: " + value.format(port=port).encode() + b"\r\n"))
    assert _status(answer) == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example:80", "https://127.0.0.1:1", "file://"]
)
async def test_foreign_origin_is_refused_with_403(base: str, origin: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/mcp", json=initialize_body(), headers=headers(origin=origin))
    assert response.status_code == 403


async def test_allowed_origin_and_absent_origin_are_served(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        with_origin = await client.post("/mcp", json=initialize_body(), headers=headers(origin=base))
        without = await client.post("/mcp", json=initialize_body(), headers=headers())
    assert (with_origin.status_code, without.status_code) == (200, 200)


@pytest.mark.parametrize("param", ["token", "access_token", "api_key", "API_KEY", "apikey"])
async def test_credentials_in_the_query_string_are_refused_and_not_logged(
    param: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings()
    app, _ = build_app(settings)
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(f"/mcp?{param}=sk-live-SECRET123", json=initialize_body(), headers=headers())
    assert response.status_code == 400
    assert "SECRET123" not in response.text
    assert all("SECRET123" not in r.getMessage() for r in caplog.records)


async def test_the_access_log_never_sees_a_query_credential(caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings()
    app, _ = build_app(settings)
    config_log = logging.getLogger("uvicorn.access")
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    async with serving(app, settings, access_log=True) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/mcp?access_token=eyJSECRET", json=initialize_body(), headers=headers())
    lines = [r.getMessage() for r in caplog.records if r.name == config_log.name]
    assert lines, "access log produced nothing"
    assert all("eyJSECRET" not in line for line in lines)


async def test_a_5_mib_body_is_refused_with_413() -> None:
    settings = _settings()  # default cap: 4 MiB
    app, _ = build_app(settings)
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}}'
    async with serving(app, settings) as url:
        answer = await send_while_reading(port_of(url), _post(b"Host: " + url[7:].encode() + b"\r\n", body))
    assert _status(answer) == 413


async def test_a_chunked_body_over_the_cap_is_refused_with_413() -> None:
    settings = _settings()
    app, _ = build_app(settings)
    head = _post(b"Host: 127.0.0.1\r\n", b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    async with serving(app, settings) as url:
        answer = await send_while_reading(port_of(url), head + chunk * (5 * 16) + b"0\r\n\r\n")
    assert _status(answer) == 413


async def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_deadline(base: str) -> None:
    port = port_of(base)
    body = INIT
    head = _post(b"Host: 127.0.0.1:" + str(port).encode() + b"\r\n", body)[: -len(body)]
    sent = 0
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head)
        answer = b""
        with anyio.fail_after(10):
            while not answer:
                await stream.send(body[sent : sent + 1])
                sent += 1
                with anyio.move_on_after(0.1):
                    answer = await stream.receive()
        answer += await _read_all(stream)
    assert _status(answer) == 408
    assert sent < len(body), "the whole body got through before the deadline"


async def test_requests_beyond_the_concurrency_limit_get_503_with_retry_after() -> None:
    settings = _settings(max_concurrent_requests=1, request_body_timeout_seconds=30)
    app, _ = build_app(settings)
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        port = int(url.rsplit(":", 1)[1])
        stalled = _post(b"Host: 127.0.0.1:" + str(port).encode() + b"\r\n")[: -len(INIT)]
        async with await anyio.connect_tcp("127.0.0.1", port) as slow:
            await slow.send(stalled)  # headers only: the request holds its slot while its body is awaited
            with anyio.fail_after(5):
                response = await client.post("/mcp", json=initialize_body(), headers=headers())
                while response.status_code != 503:  # the stalled request may not be admitted yet
                    response = await client.post("/mcp", json=initialize_body(), headers=headers())
        assert response.headers["retry-after"] == "1"
        with anyio.fail_after(5):
            after = await client.post("/mcp", json=initialize_body(), headers=headers())
            while after.status_code == 503:
                after = await client.post("/mcp", json=initialize_body(), headers=headers())
        assert after.status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM:443", ("example.com", 443)),
        ("[::1]:8000", ("[::1]", 8000)),
        ("10.0.0.1:65535", ("10.0.0.1", 65535)),
        ("a_b.example", None),
        ("example.com:", None),
        ("example.com:65536", None),
        ("exa mple.com", None),
        ("[fe80::1%eth0]", None),
        ("-bad.example", None),
        ("xn--bcher-kva.example", ("xn--bcher-kva.example", None)),
        ("bücher.example", None),
        ("example.com:*", None),
    ],
)
def test_host_values_parse_strictly(value: str, expected: tuple[str, int | None] | None) -> None:
    parsed = parse_authority(value)
    assert (None if parsed is None else (parsed.host, parsed.port)) == expected


def test_origins_parse_strictly() -> None:
    assert parse_origin("http://localhost:3000") is not None
    assert parse_origin("http://localhost:3000/") is None
    assert parse_origin("http://user@localhost") is None
    assert parse_origin("null") is None
    assert parse_origin("ftp://localhost") is None
