"""Refuse insecure HTTP set-ups at start, each with a message that says how to fix it."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp_desk.config import Settings, is_loopback
from mcp_desk.errors import ConfigError

DEFAULT_ALLOWED_HOSTS = frozenset({"127.0.0.1:*", "localhost:*", "[::1]:*"})
WILDCARDS = frozenset({"*", "*:*", "http://*", "https://*", "null"})


def check_http_security(settings: Settings, *, auth_configured: bool) -> None:
    """Raise ConfigError when serving HTTP with these settings would be unsafe."""
    loopback = is_loopback(settings.host)
    if settings.auth_mode == "oauth" and not auth_configured:
        raise ConfigError("MCP_DESK_AUTH_MODE: oauth is selected but no token verifier could be built")
    if not auth_configured and settings.auth_mode != "none":
        _check_unauthenticated(settings, loopback=loopback)
    if settings.environment == "production":
        _check_production(settings, auth_configured=auth_configured, loopback=loopback)


def _check_unauthenticated(settings: Settings, *, loopback: bool) -> None:
    how = (
        "set MCP_DESK_API_KEYS_FILE (create keys with `mcp-desk keys create`) "
        "or MCP_DESK_AUTH_MODE=oauth with MCP_DESK_OAUTH_ISSUER, _AUDIENCE and _JWKS_URL"
    )
    if not loopback:
        raise ConfigError(
            f"MCP_DESK_HOST: binding {settings.host} without authentication exposes every tool to the network; "
            f"{how}, or bind MCP_DESK_HOST=127.0.0.1"
        )
    if settings.environment != "development":
        raise ConfigError(f"MCP_DESK_ENVIRONMENT: HTTP without authentication is for development only; {how}")


def _check_production(settings: Settings, *, auth_configured: bool, loopback: bool) -> None:
    if not auth_configured or settings.auth_mode == "none":
        raise ConfigError(
            "MCP_DESK_AUTH_MODE: production needs authentication; set MCP_DESK_API_KEYS_FILE "
            "or MCP_DESK_AUTH_MODE=oauth with MCP_DESK_OAUTH_ISSUER, _AUDIENCE and _JWKS_URL"
        )
    if any(_is_wildcard(h) for h in settings.allowed_hosts):
        raise ConfigError("MCP_DESK_ALLOWED_HOSTS: wildcards are refused in production; list the public host names")
    if any(_is_wildcard(o) for o in settings.allowed_origins):
        raise ConfigError("MCP_DESK_ALLOWED_ORIGINS: wildcards are refused in production; list the exact origins")
    if not loopback and set(settings.allowed_hosts) <= DEFAULT_ALLOWED_HOSTS:
        raise ConfigError(
            "MCP_DESK_ALLOWED_HOSTS: still the development default (loopback only) on a public bind; "
            'set it to the name clients use, e.g. ["desk.example.com"]'
        )
    _check_production_oauth(settings)


def _check_production_oauth(settings: Settings) -> None:
    if settings.auth_mode != "oauth":
        return
    for key, url in (("AUDIENCE", settings.oauth_audience), ("JWKS_URL", settings.oauth_jwks_url)):
        if url and urlsplit(url).scheme != "https":
            raise ConfigError(f"MCP_DESK_OAUTH_{key}: production needs an https:// URL")


def _is_wildcard(value: str) -> bool:
    host = value.split("://", 1)[-1]
    return value.strip() in WILDCARDS or host.startswith("*")
