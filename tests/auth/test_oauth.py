"""JwtVerifier: signature, algorithms, issuer, audience (RFC 8707), time claims, principal and role mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from mcp_desk.auth.oauth import JwksCache, JwtVerifier, auth_settings, claim_role, file_loader, jwt_verifier
from mcp_desk.config import Settings
from mcp_desk.errors import ConfigError
from tests.auth.jwt_support import AUDIENCE, ISSUER, LocalIdp

pytestmark = pytest.mark.anyio


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp(tmp_path: Path) -> LocalIdp:
    return LocalIdp(jwks_path=tmp_path / "jwks.json")


def _settings(idp: LocalIdp, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "auth_mode": "oauth",
        "oauth_issuer": ISSUER,
        "oauth_audience": AUDIENCE,
        "oauth_jwks_file": idp.jwks_path,
        "oauth_role_claim": "mcp_desk_role",
    }
    return Settings(**(base | overrides))


@pytest.fixture
def verifier(idp: LocalIdp) -> JwtVerifier:
    return jwt_verifier(_settings(idp))


async def test_a_valid_token_maps_issuer_and_subject_to_the_principal(idp: LocalIdp, verifier: JwtVerifier) -> None:
    token = await verifier.verify_token(idp.mint())
    assert token is not None
    assert token.claims == {"iss": ISSUER, "sub": "alice", "principal": f"{ISSUER}#alice", "role": "agent"}
    assert (token.client_id, token.subject, token.resource) == ("desk-client", "alice", AUDIENCE)
    assert token.scopes == ["mcp:tools", "notes:read"]
    assert idp.mint() not in token.token


async def test_an_ec_token_is_accepted(idp: LocalIdp, verifier: JwtVerifier) -> None:
    assert await verifier.verify_token(idp.mint(alg="ES256", kid="ec-1")) is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://other.example.com/mcp"},
        {"aud": ["https://other.example.com/mcp"]},
        {"aud": None},
        {"iss": "https://evil.example.com"},
        {"iss": None},
        {"sub": None},
        {"exp": None},
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"mcp_desk_role": None},
    ],
)
async def test_tokens_with_bad_claims_are_refused(idp: LocalIdp, verifier: JwtVerifier, overrides: Any) -> None:
    assert await verifier.verify_token(idp.mint(**overrides)) is None


async def test_an_audience_list_naming_this_server_is_accepted(idp: LocalIdp, verifier: JwtVerifier) -> None:
    token = await verifier.verify_token(idp.mint(aud=["https://other.example.com", AUDIENCE]))
    assert token is not None
    assert token.resource == AUDIENCE


async def test_small_clock_skew_is_tolerated(idp: LocalIdp, verifier: JwtVerifier) -> None:
    assert await verifier.verify_token(idp.mint(nbf=int(time.time()) + 5)) is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_unsigned_and_symmetric_tokens_are_refused(idp: LocalIdp, verifier: JwtVerifier) -> None:
    claims = json.dumps(idp.claims()).encode()
    none_header = _b64(b'{"alg":"none","kid":"rsa-1"}')
    unsigned = f"{none_header}.{_b64(claims)}."
    public_pem = idp.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = _b64(b'{"alg":"HS256","kid":"rsa-1"}')
    signing_input = f"{hs_header}.{_b64(claims)}"
    forged = f"{signing_input}.{_b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert await verifier.verify_token(unsigned) is None
    assert await verifier.verify_token(forged) is None


async def test_a_token_signed_by_a_key_outside_the_jwks_is_refused(idp: LocalIdp, tmp_path: Path) -> None:
    stranger = LocalIdp(jwks_path=tmp_path / "other.json")
    verifier = jwt_verifier(_settings(idp))
    assert await verifier.verify_token(stranger.mint()) is None
    assert await verifier.verify_token(stranger.mint(kid="nope")) is None
    assert await verifier.verify_token("not a jwt") is None
    assert await verifier.verify_token("x" * 20000) is None


async def test_a_key_with_the_wrong_type_for_the_algorithm_is_refused(idp: LocalIdp, verifier: JwtVerifier) -> None:
    assert await verifier.verify_token(idp.mint(alg="ES256", kid="rsa-1")) is None


async def test_two_issuers_with_the_same_subject_are_different_principals(idp: LocalIdp, tmp_path: Path) -> None:
    other_issuer = "https://idp2.example.com"
    first = await jwt_verifier(_settings(idp)).verify_token(idp.mint())
    second = await jwt_verifier(_settings(idp, oauth_issuer=other_issuer)).verify_token(idp.mint(iss=other_issuer))
    assert first is not None
    assert second is not None
    assert (first.claims or {})["principal"] != (second.claims or {})["principal"]


async def test_scp_lists_and_nested_role_claims_are_read(idp: LocalIdp) -> None:
    verifier = jwt_verifier(_settings(idp, oauth_role_claim="realm_access.roles"))
    token = await verifier.verify_token(idp.mint(scope=None, scp=["a", "b"], realm_access={"roles": ["admin", "x"]}))
    assert token is not None
    assert token.scopes == ["a", "b"]
    assert (token.claims or {})["role"] == "admin"


async def test_a_default_role_applies_only_when_configured(idp: LocalIdp) -> None:
    verifier = jwt_verifier(_settings(idp, oauth_role_claim=None, oauth_default_role="viewer"))
    token = await verifier.verify_token(idp.mint())
    assert token is not None
    assert (token.claims or {})["role"] == "viewer"
    assert await jwt_verifier(_settings(idp, oauth_role_claim=None)).verify_token(idp.mint()) is None


async def test_a_rotated_key_is_picked_up_when_an_unknown_kid_appears(idp: LocalIdp) -> None:
    clock = ManualClock()
    cache = JwksCache(load=file_loader(idp.jwks_path), algorithms=frozenset({"RS256"}), max_age=300, clock=clock)
    verifier = JwtVerifier(
        keys=cache, issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"RS256"}), default_role="viewer"
    )
    assert await verifier.verify_token(idp.mint()) is not None
    rotated = LocalIdp(jwks_path=idp.jwks_path)  # overwrites the file with new keys, same kids
    assert await verifier.verify_token(rotated.mint()) is None  # cached keys still the old ones
    clock.now += 301
    assert await verifier.verify_token(rotated.mint()) is not None


async def test_an_unreadable_jwks_keeps_the_last_good_keys(idp: LocalIdp) -> None:
    clock = ManualClock()
    cache = JwksCache(load=file_loader(idp.jwks_path), algorithms=frozenset({"RS256"}), clock=clock)
    assert await cache.key_for("rsa-1") is not None
    idp.jwks_path.write_text("{not json", encoding="utf-8")
    clock.now += 1000
    assert await cache.key_for("rsa-1") is not None


def test_symmetric_or_none_algorithms_are_a_config_error(idp: LocalIdp) -> None:
    for algorithms in (["HS256"], ["none"], ["RS256", "HS512"], []):
        with pytest.raises(ConfigError, match="MCP_DESK_OAUTH_ALGORITHMS"):
            jwt_verifier(_settings(idp, oauth_algorithms=algorithms))


def test_missing_oauth_settings_name_the_key(idp: LocalIdp) -> None:
    with pytest.raises(ConfigError, match="MCP_DESK_OAUTH_ISSUER"):
        jwt_verifier(_settings(idp, oauth_issuer=None))
    with pytest.raises(ConfigError, match="MCP_DESK_OAUTH_JWKS_URL"):
        jwt_verifier(_settings(idp, oauth_jwks_file=None))
    with pytest.raises(ConfigError, match="not both"):
        jwt_verifier(_settings(idp, oauth_jwks_url="https://idp.example.com/jwks"))


def test_auth_settings_validate_the_token_resource(idp: LocalIdp) -> None:
    strict = auth_settings(_settings(idp, oauth_required_scopes=["mcp:tools"]))
    assert strict.validate_token_resource is True
    assert str(strict.resource_server_url) == AUDIENCE
    assert strict.required_scopes == ["mcp:tools"]


def test_role_claims_must_be_non_empty_strings() -> None:
    assert claim_role({"r": ""}, "r") is None
    assert claim_role({"r": 3}, "r") is None
    assert claim_role({"r": [3, "admin"]}, "r") == "admin"
    assert claim_role({"a": "x"}, "a.b") is None
