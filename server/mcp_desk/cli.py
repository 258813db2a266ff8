"""The `mcp-desk` command line: argv → Settings → logging → app → transport."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mcp_desk.config import Settings, load_settings
from mcp_desk.errors import ConfigError

BOOTSTRAP_PRINCIPAL = "admin"
BOOTSTRAP_ROLE = "admin"


def parser() -> argparse.ArgumentParser:
    """Subcommands and their flags."""
    top = argparse.ArgumentParser(prog="mcp-desk", description="A hardened MCP server for a support desk.")
    top.add_argument("--version", action="version", version=f"mcp-desk {_version()}")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("stdio", help="serve MCP over stdin/stdout (logs go to stderr)")
    http = sub.add_parser("http", help="serve Streamable HTTP at /mcp and the health sidecar")
    http.add_argument("--host", help="bind address (default MCP_DESK_HOST)")
    http.add_argument("--port", type=int, help="port (default MCP_DESK_PORT)")
    sub.add_parser("check-config", help="validate configuration and policy, print the effective config")
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="print a new API key once, and the line for the keys file")
    create.add_argument("--principal", required=True)
    create.add_argument("--role", required=True)
    create.add_argument("--json", action="store_true", help="print one JSON object {key, principal, role, line}")
    create.add_argument(
        "--append", action="store_true", help="add the line to MCP_DESK_API_KEYS_FILE (created with mode 0600)"
    )
    listing = keys.add_parser("list", help="key ids, principals and roles (never hashes)")
    listing.add_argument("--json", action="store_true", help="print a JSON array of {key_id, principal, role}")
    revoke = keys.add_parser("revoke", help="remove a key; running servers refuse it from their next request")
    revoke.add_argument("key_id", metavar="KEY_ID")
    policy = sub.add_parser("policy", help="the policy").add_subparsers(dest="policy_command", required=True)
    explain = policy.add_parser("explain", help="print which tools, scopes, paths and limits a role has")
    explain.add_argument("--role")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="verify audit hash chains: files, or folders of per-replica chain files")
    verify.add_argument(
        "path", nargs="*", type=Path, help="chain files or folders (default: the configured audit log or folder)"
    )
    sub.add_parser("migrate", help="apply schema migrations to the configured storage (SQLite or PostgreSQL) and exit")
    return top


def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Parse argv and run one command; configuration errors are one line on stderr and exit code 1."""
    args = parser().parse_args(argv)
    if args.command not in ("stdio", "http"):
        gc.enable()  # off for a server's start-up only (`mcp_desk.__main__`)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    try:
        settings = load_settings(**overrides)
        return _dispatch(args, settings, out, err)
    except ConfigError as exc:
        print(f"mcp-desk: configuration error: {exc}", file=err)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    if args.command in ("stdio", "http"):
        return _serve(args.command, settings)
    if args.command == "keys":  # before importing the app: a keys file that does not exist yet is fine here
        return _keys(args, settings, out, err)
    if args.command == "audit":  # before importing the app: verifying a file needs none of it
        from mcp_desk.policy.audit_log import command_audit_verify

        key = settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None
        default = settings.audit_log_folder or settings.resolved_audit_log_path
        return command_audit_verify(args.path or [default], key, out)
    if args.command == "migrate":
        return _migrate(settings, out, err)
    from mcp_desk.app import create_app

    app = create_app(settings, transport="http" if args.command == "check-config" else "stdio")
    if args.command == "check-config":
        return _check_config(settings, app.auth is not None, out)
    return _explain(app, args.role, out)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-desk")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _keys(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    from mcp_desk.policy import keys
    from mcp_desk.policy.rules import Policy

    path = settings.api_keys_file
    if args.keys_command == "list":
        return keys.command_keys_list(path, args.json, out, err=err)
    if args.keys_command == "revoke":
        return keys.command_keys_revoke(path, args.key_id, out, err=err)
    if args.append and path is None:
        print("mcp-desk: --append needs MCP_DESK_API_KEYS_FILE (the keys file to add the line to)", file=err)
        return 1
    roles = Policy.load(settings.policy_file).role_names()
    target = path if args.append else None
    return keys.command_keys_create(args.principal, args.role, args.json, out, roles=roles, err=err, append_to=target)


def _check_config(settings: Settings, auth_configured: bool, out: TextIO) -> int:
    from mcp_desk.auth import check_http_security

    check_http_security(settings, auth_configured=auth_configured)
    print(json.dumps(settings.masked(), indent=2, sort_keys=True), file=out)
    return 0


def _migrate(settings: Settings, out: TextIO, err: TextIO) -> int:
    """Open the configured storage once: opening applies pending migrations (under a lock), closing ends."""
    import anyio

    from mcp_desk.app import build_storage
    from mcp_desk.logging import configure_logging
    from mcp_desk.policy.redaction import Redactor
    from mcp_desk.storage.postgres.connection import describe

    configure_logging(settings.log_level, settings.resolved_log_format, redact=Redactor().text)
    url = settings.database_url
    where = describe(url.get_secret_value()) if url is not None else str(settings.database_path)
    storage = build_storage(settings)

    async def migrate() -> None:
        async with storage.open():
            pass

    try:
        anyio.run(migrate)
    except RuntimeError as exc:
        print(f"mcp-desk: migrate failed: {exc}", file=err)
        return 1
    print(f"mcp-desk: the schema of {where} is current", file=out)
    return 0


def _explain(app: object, role: str | None, out: TextIO) -> int:
    from mcp_desk.app import App
    from mcp_desk.policy.rules import command_policy_explain
    from mcp_desk.tools.diagnostics import explain_diagnostics

    assert isinstance(app, App)  # noqa: S101  # narrowing for the type checker; always true
    tools = {name: spec.scope for name, spec in app.registry.specs.items()}
    code = command_policy_explain(app.policy, role, tools, out, default_rpm=app.settings.rate_limit_rpm)
    print("\ndiagnostics (run_diagnostic, scope diagnostics:run):", file=out)
    for line in explain_diagnostics(app.runner.allowlist):
        print(f"  {line}", file=out)
    return code


def _serve(command: str, settings: Settings) -> int:
    import anyio
    import structlog

    from mcp_desk.app import create_app
    from mcp_desk.config import otel_traces_endpoint
    from mcp_desk.logging import configure_logging
    from mcp_desk.policy.redaction import Redactor
    from mcp_desk.transports import serve_http, serve_stdio

    _bootstrap(settings, sys.stderr)
    configure_logging(settings.log_level, settings.resolved_log_format, redact=Redactor().text)
    structlog.contextvars.bind_contextvars(replica=settings.replica_id)  # every later log line names it
    if command == "stdio":
        app = create_app(settings, transport="stdio", traces_endpoint=otel_traces_endpoint())
        anyio.run(serve_stdio, app, backend_options=loop_options())
        return 0
    app = create_app(settings, transport="http", traces_endpoint=otel_traces_endpoint())

    async def main() -> None:
        await serve_http(app, host=settings.host, port=settings.port)

    anyio.run(main, backend_options=loop_options())
    return 0


def loop_options() -> dict[str, bool]:
    """uvloop where it is installed (not on Windows); otherwise asyncio's default loop."""
    try:
        import uvloop  # noqa: F401  # only probing that it can be imported
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _bootstrap(settings: Settings, err: TextIO) -> None:
    """First start with MCP_DESK_BOOTSTRAP_ADMIN_KEY and no keys file: create one admin key, show it once."""
    path = settings.api_keys_file
    if not settings.bootstrap_admin_key or path is None:
        return
    from mcp_desk.policy.keys import bootstrap_admin_key
    from mcp_desk.policy.rules import Policy

    if path.exists():
        return
    if BOOTSTRAP_ROLE not in Policy.load(settings.policy_file).role_names():
        raise ConfigError(
            f"MCP_DESK_BOOTSTRAP_ADMIN_KEY: the policy defines no role {BOOTSTRAP_ROLE!r} to give the key"
        )
    try:
        key = bootstrap_admin_key(path, principal=BOOTSTRAP_PRINCIPAL, role=BOOTSTRAP_ROLE)
    except OSError as exc:
        raise ConfigError(f"MCP_DESK_API_KEYS_FILE: cannot create {path}: {exc.strerror or exc}") from None
    if key is None:
        return
    bar = "=" * 72
    err.write(
        f"{bar}\n"
        "MCP-DESK FIRST START: ADMIN API KEY (shown once, never again)\n"
        f"  key:       {key}\n"
        f"  principal: {BOOTSTRAP_PRINCIPAL}    role: {BOOTSTRAP_ROLE}\n"
        f"  Only its hash is stored, in {path}.\n"
        "  Send it as the header `Authorization: Bearer <key>`. Manage keys with `mcp-desk keys`\n"
        "  (in compose: docker compose exec mcp-desk mcp-desk keys create --principal NAME --role agent --append).\n"
        f"{bar}\n"
    )
    err.flush()
