"""Bearer authentication through a real uvicorn: API keys, OAuth JWTs, 401/403 and Protected Resource Metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from mcp_desk.auth import http_auth, principal_of
from mcp_desk.auth.apikey import ApiKeyVerifier
from mcp_desk.config import Settings
from tests.auth.jwt_support import AUDIENCE, ISSUER, LocalIdp
from tests.httpsec_support import (
    Key,
    MemoryKeyStore,
    build_app,
    call_tool,
    initialize_body,
    messages,
    open_session,
    serving,
)
from tests.httpsec_support import headers as rpc_headers

pytestmark = pytest.mark.anyio

KEY = "mdk_live_0123456789abcdefXYZ"
STORE = MemoryKeyStore({KEY: Key("alice", "agent", "k1")})


@pytest.fixture
async def api_key_client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings()
    app, _ = build_app(settings, auth=http_auth(settings, key_store=STORE))
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.fixture
def idp(tmp_path: Path) -> LocalIdp:
    return LocalIdp(jwks_path=tmp_path / "jwks.json")


@pytest.fixture
async def oauth_client(idp: LocalIdp) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        auth_mode="oauth",
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_jwks_file=idp.jwks_path,
        oauth_role_claim="mcp_desk_role",
        oauth_required_scopes=["mcp:tools"],
    )
    app, _ = build_app(settings, auth=http_auth(settings, key_store=None))
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", "Bearer x", "Basic YWxpY2U6eA==", "Bearer " + "k" * 600]
)
async def test_a_missing_or_bad_key_gets_401_with_www_authenticate(
    api_key_client: httpx.AsyncClient, authorization: str | None
) -> None:
    extra: dict[str, Any] = {} if authorization is None else {"authorization": authorization}
    response = await api_key_client.post("/mcp", json=initialize_body(), headers=rpc_headers(**extra))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_a_valid_key_opens_a_session_as_its_principal(api_key_client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        session = await open_session(api_key_client, token=KEY)
        response = await call_tool(api_key_client, "whoami", {}, session=session, token=KEY)
        await api_key_client.post("/mcp", json=initialize_body(), headers=rpc_headers(token=KEY + "x"))
    assert messages(response)[-1]["result"]["structuredContent"] == {"caller": "alice"}
    assert KEY not in repr(logs)


async def test_a_key_in_the_query_string_is_refused(api_key_client: httpx.AsyncClient) -> None:
    response = await api_key_client.post(f"/mcp?api_key={KEY}", json=initialize_body(), headers=rpc_headers())
    assert response.status_code == 400
    assert KEY not in response.text


async def test_the_api_key_verifier_keeps_no_copy_of_the_key() -> None:
    token = await ApiKeyVerifier(STORE).verify_token(KEY)
    assert token is not None
    assert KEY not in token.model_dump_json()
    assert principal_of(token) == ("alice", "agent")
    assert (token.client_id, token.subject) == ("alice", "alice")
    assert await ApiKeyVerifier(STORE).verify_token("k" * 600) is None


def test_principal_of_refuses_foreign_tokens() -> None:
    from mcp.server.auth.provider import AccessToken

    with pytest.raises(ValueError, match="mcp-desk verifier"):
        principal_of(AccessToken(token="t", client_id="c", scopes=[]))


async def test_a_valid_jwt_reaches_the_tool_as_issuer_and_subject(
    oauth_client: httpx.AsyncClient, idp: LocalIdp
) -> None:
    token = idp.mint()
    session = await open_session(oauth_client, token=token)
    response = await call_tool(oauth_client, "whoami", {}, session=session, token=token)
    assert messages(response)[-1]["result"]["structuredContent"] == {"caller": f"{ISSUER}#alice"}


async def test_a_token_for_another_audience_gets_401(oauth_client: httpx.AsyncClient, idp: LocalIdp) -> None:
    token = idp.mint(aud="https://other.example.com/mcp")
    response = await oauth_client.post("/mcp", json=initialize_body(), headers=rpc_headers(token=token))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert 'resource_metadata="https://desk.example.com/.well-known/oauth-protected-resource/mcp"' in challenge


async def test_an_expired_token_gets_401(oauth_client: httpx.AsyncClient, idp: LocalIdp) -> None:
    token = idp.mint(exp=1_000_000, iat=999_000, nbf=999_000)
    response = await oauth_client.post("/mcp", json=initialize_body(), headers=rpc_headers(token=token))
    assert response.status_code == 401


async def test_a_token_without_the_required_scope_gets_403_naming_it(
    oauth_client: httpx.AsyncClient, idp: LocalIdp
) -> None:
    token = idp.mint(scope="notes:read")
    response = await oauth_client.post("/mcp", json=initialize_body(), headers=rpc_headers(token=token))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "mcp:tools" in response.json()["error_description"]


async def test_protected_resource_metadata_is_served(oauth_client: httpx.AsyncClient) -> None:
    response = await oauth_client.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    document = response.json()
    assert document["resource"] == AUDIENCE
    assert document["authorization_servers"] == [ISSUER]
    assert document["bearer_methods_supported"] == ["header"]


async def test_one_principals_session_is_404_for_another_subject(
    oauth_client: httpx.AsyncClient, idp: LocalIdp
) -> None:
    session = await open_session(oauth_client, token=idp.mint())
    response = await call_tool(oauth_client, "whoami", {}, session=session, token=idp.mint(sub="mallory"))
    assert response.status_code == 404
