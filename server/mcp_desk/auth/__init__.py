"""HTTP authentication: API keys or OAuth JWTs through the SDK's bearer middleware, and start-up refusal."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_desk.auth.apikey import ApiKeyVerifier, KeyStore
from mcp_desk.auth.startup import check_http_security
from mcp_desk.config import Settings

__all__ = ["HttpAuth", "check_http_security", "http_auth", "principal_of", "protect"]


@dataclass(frozen=True, kw_only=True)
class HttpAuth:
    """How `/mcp` authenticates: the verifier, plus AuthSettings in OAuth mode (None for API keys)."""

    verifier: TokenVerifier
    settings: AuthSettings | None = None
    metadata_routes: tuple[Route, ...] = ()


def http_auth(settings: Settings, *, key_store: KeyStore | None) -> HttpAuth | None:
    """The authentication the settings ask for; None means none is configured (loopback development only)."""
    if settings.auth_mode == "oauth":
        # Imported here: PyJWT, cryptography and httpx cost ~0.3 s of start-up that API-key and stdio
        # servers never need (stdio cold start is what a desktop client waits for).
        from mcp_desk.auth.oauth import auth_settings, authorization_servers, jwt_verifier

        strict = auth_settings(settings)
        assert strict.resource_server_url is not None  # noqa: S101  # auth_settings always sets it
        routes = create_protected_resource_routes(
            resource_url=strict.resource_server_url,
            authorization_servers=list(authorization_servers(settings)),
            scopes_supported=strict.required_scopes,
        )
        return HttpAuth(verifier=jwt_verifier(settings), settings=strict, metadata_routes=tuple(routes))
    if settings.auth_mode == "api_key" and key_store is not None:
        return HttpAuth(verifier=ApiKeyVerifier(key_store))
    return None


def protect(endpoint: ASGIApp, auth: HttpAuth) -> ASGIApp:
    """Wrap the MCP endpoint: bearer token → principal (401/403 with WWW-Authenticate) → auth contextvar."""
    strict = auth.settings
    resource = strict.resource_server_url if strict is not None and strict.validate_token_resource else None
    metadata_url = build_resource_metadata_url(resource) if resource is not None else None
    required = list(strict.required_scopes or []) if strict is not None else []
    inner = RequireAuthMiddleware(AuthContextMiddleware(endpoint), required, metadata_url)
    return AuthenticationMiddleware(inner, backend=BearerAuthBackend(auth.verifier, resource_server_url=resource))


def principal_of(token: AccessToken) -> tuple[str, str]:
    """(principal id, role) from a token our verifiers made; the registry turns it into a Principal."""
    claims = token.claims or {}
    principal, role = claims.get("principal"), claims.get("role")
    if not isinstance(principal, str) or not isinstance(role, str):
        raise ValueError("access token was not made by an mcp-desk verifier")
    return principal, role
