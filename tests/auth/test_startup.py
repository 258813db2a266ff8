"""check_http_security: insecure HTTP set-ups refuse to start with a message that says how to fix them."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_desk.auth import check_http_security
from mcp_desk.config import Settings
from mcp_desk.errors import ConfigError

PUBLIC = {"host": "0.0.0.0", "allowed_hosts": ["desk.example.com"], "allowed_origins": ["https://desk.example.com"]}  # noqa: S104  # the bind under test


def _check(*, auth: bool, **overrides: Any) -> None:
    check_http_security(Settings(**overrides), auth_configured=auth)


def test_loopback_development_without_keys_is_allowed() -> None:
    _check(auth=False)


def test_a_public_bind_without_authentication_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"MCP_DESK_HOST: .*MCP_DESK_API_KEYS_FILE"):
        _check(auth=False, **PUBLIC)


def test_staging_without_authentication_is_refused_even_on_loopback() -> None:
    with pytest.raises(ConfigError, match="MCP_DESK_ENVIRONMENT"):
        _check(auth=False, environment="staging")


def test_explicit_auth_mode_none_allows_a_public_bind_outside_production() -> None:
    _check(auth=False, auth_mode="none", **PUBLIC)
    with pytest.raises(ConfigError, match="production needs authentication"):
        _check(auth=False, auth_mode="none", environment="production", **PUBLIC)


def test_production_with_keys_and_named_hosts_is_allowed() -> None:
    _check(auth=True, environment="production", **PUBLIC)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"allowed_hosts": ["*"]}, "MCP_DESK_ALLOWED_HOSTS"),
        ({"allowed_hosts": ["*.example.com"]}, "MCP_DESK_ALLOWED_HOSTS"),
        ({"allowed_origins": ["*"]}, "MCP_DESK_ALLOWED_ORIGINS"),
        ({"allowed_origins": ["https://*"]}, "MCP_DESK_ALLOWED_ORIGINS"),
        ({"allowed_origins": ["null"]}, "MCP_DESK_ALLOWED_ORIGINS"),
        ({"allowed_hosts": ["127.0.0.1:*", "localhost:*"]}, "development default"),
    ],
)
def test_production_refuses_wildcards_and_development_defaults(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _check(auth=True, environment="production", **(PUBLIC | overrides))


def test_production_oauth_needs_https_urls() -> None:
    oauth = {"auth_mode": "oauth", "oauth_issuer": "https://idp", "oauth_jwks_url": "https://idp/jwks"}
    _check(auth=True, environment="production", oauth_audience="https://desk.example.com/mcp", **oauth, **PUBLIC)
    with pytest.raises(ConfigError, match="MCP_DESK_OAUTH_AUDIENCE"):
        _check(auth=True, environment="production", oauth_audience="http://desk.example.com/mcp", **oauth, **PUBLIC)


def test_oauth_mode_without_a_verifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="MCP_DESK_AUTH_MODE"):
        _check(auth=False, auth_mode="oauth")
