"""Refused credentials on /mcp are audited as auth_failed and counted as alerts, never with the credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from mcp_desk.auth import HttpAuth, http_auth, protect
from mcp_desk.auth.failures import ReportAuthFailures
from mcp_desk.config import Settings
from mcp_desk.metrics import Metrics
from mcp_desk.policy.alerts import Alerter
from mcp_desk.policy.audit import Audit
from mcp_desk.policy.redaction import Redactor
from tests.auth.jwt_support import AUDIENCE, ISSUER, LocalIdp
from tests.httpsec_support import Key, MemoryKeyStore
from tests.support.audit import MemoryAuditSink

pytestmark = pytest.mark.anyio

KEY = "mdk_live_0123456789abcdefXYZ"
WRONG_KEY = "mdk_live_guessed0123456789SECRET"


async def reached(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"reached"})


@dataclass
class Stack:
    """A protected endpoint wired like the app: verifier → 401/403 → ReportAuthFailures → Audit → Alerter."""

    client: httpx.AsyncClient
    sink: MemoryAuditSink
    metrics: Metrics

    def reasons(self) -> list[str | None]:
        return [e.detail for e in self.sink.events if e.event_type == "auth_failed"]

    def alerts(self) -> float:
        for family in text_string_to_metric_families(self.metrics.render().decode()):
            for sample in family.samples:
                if sample.name == "mcp_desk_security_alerts_total" and sample.labels == {"kind": "auth_failed"}:
                    return sample.value
        raise AssertionError("no auth_failed alert series")


@asynccontextmanager
async def stack(auth: HttpAuth | None) -> AsyncIterator[Stack]:
    assert auth is not None
    metrics, sink = Metrics(version="t", tools=[]), MemoryAuditSink()
    audit = Audit(sink=sink, redactor=Redactor(), alerter=Alerter(on_alert=metrics.security_alert))

    async def auth_failed(reason: str) -> None:
        await audit.auth_failed(reason=reason, transport="http")

    app = ReportAuthFailures(protect(reached, auth), on_failure=auth_failed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield Stack(client=client, sink=sink, metrics=metrics)


@pytest.fixture
async def api_keys() -> AsyncIterator[Stack]:
    settings = Settings()
    async with stack(http_auth(settings, key_store=MemoryKeyStore({KEY: Key("alice", "agent", "k1")}))) as s:
        yield s


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_credentials"),
        ({"authorization": f"Bearer {WRONG_KEY}"}, "invalid_credentials"),
        ({"authorization": "Bearer " + "k" * 600}, "invalid_credentials"),
        ({"authorization": "Basic YWxpY2U6eA=="}, "unsupported_scheme"),
    ],
)
async def test_each_refused_request_is_one_auth_failed_record_and_one_alert(
    api_keys: Stack, headers: dict[str, str], reason: str
) -> None:
    response = await api_keys.client.post("/mcp", headers=headers, content=b"{}")

    assert response.status_code == 401
    assert api_keys.reasons() == [reason]
    assert api_keys.sink.events[0].transport == "http"
    assert api_keys.sink.events[0].outcome == "denied"
    assert api_keys.alerts() == 1.0


async def test_a_valid_key_is_neither_audited_nor_alerted(api_keys: Stack) -> None:
    response = await api_keys.client.post("/mcp", headers={"authorization": f"Bearer {KEY}"}, content=b"{}")

    assert response.text == "reached"
    assert api_keys.sink.events == []
    assert api_keys.alerts() == 0.0


async def test_the_presented_key_reaches_no_record_and_no_log_line(api_keys: Stack) -> None:
    with capture_logs() as logs:
        for _ in range(3):
            await api_keys.client.post("/mcp", headers={"authorization": f"Bearer {WRONG_KEY}"}, content=b"{}")

    assert api_keys.alerts() == 3.0
    assert [line["event"] for line in logs].count("security_alert") == 3
    assert WRONG_KEY not in repr(logs)
    assert WRONG_KEY not in repr([e.fields() for e in api_keys.sink.events])


async def test_oauth_refusals_are_reported_too_an_expired_token_and_a_missing_scope(tmp_path: Path) -> None:
    idp = LocalIdp(jwks_path=tmp_path / "jwks.json")
    settings = Settings(
        auth_mode="oauth",
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_jwks_file=idp.jwks_path,
        oauth_role_claim="mcp_desk_role",
        oauth_required_scopes=["mcp:tools"],
    )
    expired = idp.mint(exp=1_000_000, iat=999_000, nbf=999_000)
    narrow = idp.mint(scope="notes:read")
    async with stack(http_auth(settings, key_store=None)) as s:
        codes: list[Any] = [
            (await s.client.post("/mcp", headers={"authorization": f"Bearer {token}"}, content=b"{}")).status_code
            for token in (expired, narrow, idp.mint())
        ]
        assert codes == [401, 403, 200]
        assert s.reasons() == ["invalid_credentials", "insufficient_scope"]
        assert expired not in repr([e.fields() for e in s.sink.events])
