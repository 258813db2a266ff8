"""Settings: the one place that reads the environment (prefix `MCP_DESK_`, optional `.env`)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.errors import ConfigError

ENV_PREFIX = "MCP_DESK_"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_HEALTH_PORT = 3001
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "admin", "example"})

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseSettings):
    """Everything an operator can configure; see `.env.example` for each key's meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", env_file_encoding="utf-8", validate_default=True
    )

    environment: Environment = "development"
    storage_path: Path = Path("data")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    health_host: str = "127.0.0.1"
    health_port: int | None = Field(default=None, ge=1, le=65535)
    allowed_hosts: list[str] = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    allowed_origins: list[str] = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    max_sessions: int = Field(default=1000, ge=1)
    session_idle_seconds: float = Field(default=1800.0, gt=0)

    log_level: LogLevel = "info"
    log_format: Literal["json", "console"] | None = None

    policy_file: Path | None = None
    api_keys_file: Path | None = None
    stdio_principal: str = Field(default="local", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    stdio_role: str = "agent"

    rate_limit_rpm: int = Field(default=60, ge=1)
    rate_limit_tpm: int = Field(default=100_000, ge=1)

    audit_log_path: Path | None = None
    audit_hmac_key: SecretStr | None = None
    alert_webhook_url: str | None = None

    docs_path: Path = Path("docs/kb")
    export_path: Path = Path("data/exports")

    shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=3600)

    max_title_chars: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1)
    max_comment_bytes: int = Field(default=16 * 1024, ge=1)
    max_tags: int = Field(default=20, ge=0)
    max_tag_chars: int = Field(default=40, ge=1)
    max_page_limit: int = Field(default=100, ge=1, le=1000)
    max_query_chars: int = Field(default=500, ge=1)
    max_request_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    @field_validator("storage_path", "docs_path", "export_path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        key = self.audit_hmac_key
        if (
            self.environment == "production"
            and key is not None
            and key.get_secret_value().lower() in PLACEHOLDER_SECRETS
        ):
            raise ValueError("MCP_DESK_AUDIT_HMAC_KEY is a placeholder; generate one with `openssl rand -hex 32`")
        return self

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        """Console in development, JSON elsewhere, unless set explicitly."""
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment == "development" else "json"

    @property
    def database_path(self) -> Path:
        """The SQLite file under the storage path."""
        return self.storage_path / "mcp-desk.db"

    @property
    def resolved_audit_log_path(self) -> Path:
        """The audit log, by default beside the database."""
        return (self.audit_log_path or self.storage_path / "audit.jsonl").expanduser().absolute()

    def resolved_health_port(self, transport: Literal["stdio", "http"]) -> int | None:
        """The sidecar port: on by default for HTTP, opt-in for stdio."""
        if self.health_port is None and transport == "http":
            return DEFAULT_HEALTH_PORT
        return self.health_port

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for `check-config`."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            secret = isinstance(getattr(self, name), SecretStr)
            out[ENV_PREFIX + name.upper()] = "**********" if secret and value else value
        return out


def is_loopback(host: str) -> bool:
    """True for names and addresses that never leave this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _unknown_keys(env_file: Path | None) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    names = set(os.environ)
    if env_file is not None and env_file.is_file():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            names.add(key)
    return sorted(n for n in names if n.startswith(ENV_PREFIX) and n not in known)


def load_settings(env_file: Path | None = Path(".env"), **overrides: Any) -> Settings:
    """Build Settings once at start-up; any problem becomes one ConfigError line naming the key."""
    unknown = _unknown_keys(env_file)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see .env.example for the valid keys)")
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in err["loc"] if not str(part).isdigit()]
    key = ENV_PREFIX + loc[0].upper() if loc else "configuration"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}"
