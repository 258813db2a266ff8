"""OAuth 2.1 resource-server mode: JWT access tokens checked against a JWKS, bound to this server's URL."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import structlog
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl

from mcp_desk.config import Settings
from mcp_desk.errors import ConfigError

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 16 * 1024

log = structlog.get_logger()

JwksLoader = Callable[[], Awaitable[bytes]]


def file_loader(path: Path) -> JwksLoader:
    """Reads a JWKS document from a local file (re-read when the cache expires)."""

    async def load() -> bytes:
        return await anyio.Path(path).read_bytes()

    return load


def url_loader(url: str, *, timeout_seconds: float = 5.0) -> JwksLoader:
    """Fetches a JWKS document over HTTP(S), without following redirects, capped at 1 MiB."""

    async def load() -> bytes:
        async with httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError("JWKS document is larger than 1 MiB")
            return response.content

    return load


@dataclass
class JwksCache:
    """Signing keys by `kid`, reloaded when older than `max_age` or when an unknown `kid` appears."""

    load: JwksLoader
    algorithms: frozenset[str]
    max_age: float = 300.0
    min_refresh: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str | None, jwt.PyJWK] = field(default_factory=dict, init=False)
    _loaded_at: float | None = field(default=None, init=False)
    _lock: anyio.Lock = field(default_factory=anyio.Lock, init=False)

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key a token names, refreshing the set once if it is stale or the kid is new."""
        if self._stale() or (kid not in self._keys and self._may_refresh()):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.max_age

    def _may_refresh(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.min_refresh

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                document = json.loads(await self.load())
                self._keys = parse_jwks(document, self.algorithms)
            except (OSError, ValueError, httpx.HTTPError) as exc:
                log.warning("jwks_load_failed", error=type(exc).__name__, kept_keys=len(self._keys))
            self._loaded_at = self.clock()


def parse_jwks(document: Any, algorithms: frozenset[str]) -> dict[str | None, jwt.PyJWK]:
    """The usable public signing keys of a JWKS; symmetric, private-only or foreign-algorithm keys are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (expected an object with a 'keys' list)")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("kty") not in {"RSA", "EC"} or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg") is not None and entry["alg"] not in algorithms:
            continue
        try:
            keys[entry.get("kid")] = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue
    return keys


@dataclass(frozen=True, kw_only=True)
class JwtVerifier:
    """The SDK TokenVerifier for JWT access tokens: signature, issuer, audience (RFC 8707), expiry, role."""

    keys: JwksCache
    issuer: str
    audience: str
    algorithms: frozenset[str]
    role_claim: str | None = None
    default_role: str | None = None
    leeway_seconds: float = 30.0

    async def verify_token(self, token: str) -> AccessToken | None:
        """The principal behind a valid token, or None (the SDK answers 401 with WWW-Authenticate)."""
        if len(token) > MAX_TOKEN_CHARS:
            return _refused("too_long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return _refused("malformed")
        alg = header.get("alg")
        if alg not in self.algorithms:
            return _refused("algorithm")
        key = await self.keys.key_for(header.get("kid"))
        if key is None or key.key_type != KEY_TYPES.get(str(alg)[:2]):
            return _refused("unknown_key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            return _refused(type(exc).__name__)
        return self._access_token(claims)

    def _access_token(self, claims: Mapping[str, Any]) -> AccessToken | None:
        subject, issuer = str(claims["sub"]), str(claims["iss"])
        role = claim_role(claims, self.role_claim) or self.default_role
        if not subject or role is None:
            return _refused("no_subject" if not subject else "no_role")
        principal = f"{issuer}#{subject}"
        client_id = claims.get("client_id") or claims.get("azp") or principal
        return AccessToken(
            token=f"jwt:{token_fingerprint(claims)}",
            client_id=str(client_id),
            subject=subject,
            scopes=claim_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            claims={"iss": issuer, "sub": subject, "principal": principal, "role": role},
        )


def _refused(reason: str) -> AccessToken | None:
    log.info("oauth_token_rejected", reason=reason)
    return None


def token_fingerprint(claims: Mapping[str, Any]) -> str:
    """A short, non-secret name for a token (its `jti`, else a hash of its claims) for logs and audit."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return jti[:64]
    return hashlib.sha256(json.dumps(claims, sort_keys=True, default=str).encode()).hexdigest()[:16]


def claim_scopes(claims: Mapping[str, Any]) -> list[str]:
    """Scopes from `scope` (space-separated, RFC 8693/9068) or `scp` (a list or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return [s for s in raw.split() if s]
    if isinstance(raw, list):
        return [s for s in raw if isinstance(s, str) and s]
    return []


def claim_role(claims: Mapping[str, Any], path: str | None) -> str | None:
    """The role at a dotted claim path (`realm_access.roles`); for a list, its first string."""
    if not path:
        return None
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str)), None)
    return value if isinstance(value, str) and value else None


def jwt_verifier(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> JwtVerifier:
    """The JwtVerifier the settings describe; ConfigError names the key to fix."""
    issuer, audience = _required(settings.oauth_issuer, "ISSUER"), _required(settings.oauth_audience, "AUDIENCE")
    algorithms = frozenset(settings.oauth_algorithms)
    if not algorithms or not algorithms <= ASYMMETRIC_ALGORITHMS:
        raise ConfigError(
            "MCP_DESK_OAUTH_ALGORITHMS: only asymmetric algorithms are accepted "
            f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); never none or HS*"
        )
    cache = JwksCache(
        load=_jwks_loader(settings), algorithms=algorithms, max_age=settings.oauth_jwks_cache_seconds, clock=clock
    )
    return JwtVerifier(
        keys=cache,
        issuer=issuer,
        audience=audience,
        algorithms=algorithms,
        role_claim=settings.oauth_role_claim or None,
        default_role=settings.oauth_default_role or None,
        leeway_seconds=settings.oauth_leeway_seconds,
    )


def _jwks_loader(settings: Settings) -> JwksLoader:
    if settings.oauth_jwks_file is not None and settings.oauth_jwks_url:
        raise ConfigError("MCP_DESK_OAUTH_JWKS_FILE: set either the JWKS file or MCP_DESK_OAUTH_JWKS_URL, not both")
    if settings.oauth_jwks_file is not None:
        return file_loader(settings.oauth_jwks_file)
    if settings.oauth_jwks_url:
        return url_loader(settings.oauth_jwks_url)
    raise ConfigError("MCP_DESK_OAUTH_JWKS_URL: OAuth mode needs the issuer's JWKS URL (or MCP_DESK_OAUTH_JWKS_FILE)")


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ConfigError(f"MCP_DESK_OAUTH_{name}: required when MCP_DESK_AUTH_MODE=oauth")
    return value


def auth_settings(settings: Settings) -> AuthSettings:
    """Strict SDK AuthSettings: tokens must name this resource (RFC 8707), metadata served per RFC 9728."""
    return AuthSettings(
        issuer_url=AnyHttpUrl(_required(settings.oauth_issuer, "ISSUER")),
        resource_server_url=AnyHttpUrl(_required(settings.oauth_audience, "AUDIENCE")),
        validate_token_resource=True,
        required_scopes=list(settings.oauth_required_scopes) or None,
    )


def authorization_servers(settings: Settings) -> Sequence[AnyHttpUrl]:
    """The authorization servers advertised in Protected Resource Metadata (default: the issuer)."""
    servers = settings.oauth_authorization_servers or [_required(settings.oauth_issuer, "ISSUER")]
    return [AnyHttpUrl(s) for s in servers]
