"""Settings: the one place that reads the environment (prefix `MCP_DESK_`, optional `.env`)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_desk.errors import ConfigError

ENV_PREFIX = "MCP_DESK_"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_HEALTH_PORT = 3001
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "admin", "example"})

APP_NAME = "mcp-desk"
PACKAGE_DIR = Path(__file__).resolve().parent

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseSettings):
    """Everything an operator can configure; see `.env.example` for each key's meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        # Unknown MCP_DESK_ keys are refused by load_settings (env and .env); other keys in .env belong to
        # other tools (compose, Grafana) and are left alone.
        extra="ignore",
        env_ignore_empty=True,
        env_file_encoding="utf-8",
        validate_default=True,
    )

    environment: Environment = "development"
    # Never the working directory: desktop hosts often start a stdio server in `/`.
    storage_path: Path = Field(default_factory=lambda: default_storage_path())

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
    bootstrap_admin_key: bool = False
    stdio_principal: str = Field(default="local", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    stdio_role: str = "agent"

    rate_limit_rpm: int = Field(default=60, ge=1)
    rate_limit_tpm: int = Field(default=100_000, ge=1)

    # power: every acknowledged write (and its write-ahead audit record) is fsynced before the answer;
    # process: nothing waits for the disk, so what was acknowledged survives a crash of the process only.
    durability: Literal["power", "process"] = "power"

    audit_log_path: Path | None = None
    audit_hmac_key: SecretStr | None = None
    alert_webhook_url: str | None = None

    docs_path: Path = Field(default_factory=lambda: default_docs_path())
    export_path: Path  # filled in by _export_under_storage when not configured

    shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=3600)

    max_title_chars: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1)
    max_comment_bytes: int = Field(default=16 * 1024, ge=1)
    max_tags: int = Field(default=20, ge=0)
    max_tag_chars: int = Field(default=40, ge=1)
    max_page_limit: int = Field(default=100, ge=1, le=1000)
    max_query_chars: int = Field(default=500, ge=1)
    max_request_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # --- policy area: security alerts and the audit log ---
    alert_denial_burst: int = Field(default=5, ge=1)
    alert_denial_window_seconds: float = Field(default=60.0, gt=0)
    # Deprecated: MCP_DESK_DURABILITY decides. Set, it overrides only whether audit records are fsynced.
    audit_fsync: bool | None = None
    # --- Sandbox / diagnostics (server/mcp_desk/sandbox) ---
    diagnostics_log_root: Path = Path("/var/log")
    sandbox_mode: Literal["auto", "bwrap", "none"] = "auto"
    sandbox_require_isolation: bool = False
    sandbox_max_concurrent: int = Field(default=2, ge=1, le=64)
    sandbox_bwrap_path: Path | None = None
    sandbox_memory_mb: int = Field(default=512, ge=16, le=65536)
    sandbox_max_processes: int = Field(default=32, ge=1, le=4096)
    # --- Rate limits, output cap and daily budget (server/mcp_desk/policy/ratelimit.py, budget.py, tokens.py) ---
    # rate_limit_rpm / rate_limit_tpm are declared above with the core keys.
    rate_limit_storage_uri: SecretStr = SecretStr("memory://")
    rate_limit_state_file: Path | None = None
    # --- Scale-out: several replicas sharing Redis (server/mcp_desk/bus.py, policy/ratelimit.py) ---
    redis_url: SecretStr | None = None
    redis_key_prefix: str = Field(default="mcp-desk", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    replica_id: str = Field(
        default_factory=socket.gethostname, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@:-]+$"
    )
    max_output_tokens: int = Field(default=8000, ge=256)
    max_daily_tokens: int | None = Field(default=None, ge=1)
    max_daily_spend: float | None = Field(default=None, gt=0)
    cost_alert_threshold: float = Field(default=0.8, gt=0, le=1)
    model_input_price_per_mtok: float | dict[str, float] = 3.0
    pricing_model: str | None = None
    # --- HTTP security: authentication, sessions, transport guards (auth, transport_guards, sessions) ---
    auth_mode: Literal["api_key", "oauth", "none"] = "api_key"
    oauth_issuer: str | None = None
    oauth_audience: str | None = None
    oauth_jwks_url: str | None = None
    oauth_jwks_file: Path | None = None
    oauth_role_claim: str | None = None
    oauth_default_role: str | None = None
    oauth_authorization_servers: list[str] = []
    oauth_required_scopes: list[str] = []
    oauth_algorithms: list[str] = ["RS256", "ES256"]
    oauth_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    oauth_jwks_cache_seconds: float = Field(default=300.0, ge=1)
    max_sessions_per_principal: int = Field(default=10, ge=1)
    max_concurrent_requests: int = Field(default=64, ge=1)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # --- Scale-out: PostgreSQL storage (server/mcp_desk/storage/postgres) ---
    database_url: SecretStr | None = None

    @field_validator("storage_path", "docs_path", "export_path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="before")
    @classmethod
    def _export_under_storage(cls, data: Any) -> Any:
        """`export_path` defaults to `<storage>/exports`, whatever the storage path turned out to be."""
        if isinstance(data, dict) and data.get("export_path") is None:
            storage = data.get("storage_path") or default_storage_path()
            return {**data, "export_path": Path(storage) / "exports"}
        return data

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().split("://", 1)[0] not in {"redis", "rediss"}:
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL such as postgresql://user:password@host:5432/database")
        return value

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

    @model_validator(mode="after")
    def _pricing_selected(self) -> Settings:
        table = self.model_input_price_per_mtok
        if isinstance(table, dict) and self.pricing_model not in table:
            names = ", ".join(sorted(table)) or "none"
            raise ValueError(
                f"MCP_DESK_PRICING_MODEL must name a model of MCP_DESK_MODEL_INPUT_PRICE_PER_MTOK ({names})"
            )
        if self.rate_limit_storage_uri.get_secret_value().split("://", 1)[0] == "":
            raise ValueError("MCP_DESK_RATE_LIMIT_STORAGE_URI must be a URI such as memory:// or redis://host:6379")
        return self

    @property
    def input_price_per_mtok(self) -> float:
        """USD per million input tokens of the selected model (our output is the model's input)."""
        table = self.model_input_price_per_mtok
        if isinstance(table, dict):
            return table[self.pricing_model or ""]
        return table

    @property
    def resolved_rate_limit_state_file(self) -> Path:
        """Where in-memory rate-limit and budget counters are kept across a clean restart."""
        return (self.rate_limit_state_file or self.storage_path / "usage-counters.json").expanduser().absolute()

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
        """This replica's audit chain: by default beside the database, `<folder>/<replica_id>.jsonl` for a folder."""
        folder = self.audit_log_folder
        if folder is not None:
            return folder / f"{self.replica_id}.jsonl"
        return (self.audit_log_path or self.storage_path / "audit.jsonl").expanduser().absolute()

    @property
    def audit_log_folder(self) -> Path | None:
        """`MCP_DESK_AUDIT_LOG_PATH` when it names a folder of per-replica chains, else None.

        A folder: an existing directory, or a path that does not exist yet and has no suffix
        (`/data/audit`); a file name (`/data/audit.jsonl`) is one chain file as before.
        """
        if self.audit_log_path is None:
            return None
        path = self.audit_log_path.expanduser().absolute()
        return path if path.is_dir() or (not path.exists() and not path.suffix) else None

    @property
    def resolved_audit_fsync(self) -> bool:
        """Whether audit records are fsynced: the durability level, unless the deprecated audit_fsync says."""
        return self.durability == "power" if self.audit_fsync is None else self.audit_fsync

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


def default_storage_path() -> Path:
    """The user's data directory for mcp-desk (e.g. `~/.local/share/mcp-desk`, `%LOCALAPPDATA%\\mcp-desk`)."""
    import platformdirs  # only when no storage path is configured: 13 ms of every start otherwise (-X importtime)

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_docs_path() -> Path:
    """The sample knowledge base: shipped inside the package, or `docs/kb` of a source checkout."""
    packaged = PACKAGE_DIR / "kb"
    checkout = PACKAGE_DIR.parent.parent / "docs" / "kb"
    if not packaged.is_dir() and checkout.is_dir():
        return checkout
    return packaged


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


def otel_traces_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL from the standard OTEL_* variables; None means tracing is off.

    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as given, `OTEL_EXPORTER_OTLP_ENDPOINT` gets the
    `/v1/traces` signal path appended (as the OpenTelemetry exporters do), and `OTEL_SDK_DISABLED=true`
    or `OTEL_TRACES_EXPORTER=none` switches tracing off whatever the endpoint.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return f"{base.rstrip('/')}/v1/traces" if base else None
