"""The `mcp-desk` command line (DESIGN §2): argv → Settings → logging → app → transport."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mcp_desk.config import Settings, load_settings
from mcp_desk.errors import ConfigError


def parser() -> argparse.ArgumentParser:
    """Subcommands and their flags."""
    top = argparse.ArgumentParser(prog="mcp-desk", description="A hardened MCP server for a support desk.")
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
    policy = sub.add_parser("policy", help="the policy").add_subparsers(dest="policy_command", required=True)
    explain = policy.add_parser("explain", help="print which tools, scopes, paths and limits a role has")
    explain.add_argument("--role")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="verify the audit log's hash chain")
    verify.add_argument("path", nargs="?", type=Path)
    sub.add_parser("migrate", help="apply schema migrations to the configured storage (SQLite or PostgreSQL) and exit")
    return top


def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Parse argv and run one command; configuration errors are one line on stderr and exit code 1."""
    args = parser().parse_args(argv)
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
    if args.command == "audit":  # before importing the app: verifying a file needs none of it
        from mcp_desk.policy.audit_log import command_audit_verify

        key = settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None
        return command_audit_verify(args.path or settings.resolved_audit_log_path, key, out)
    if args.command == "migrate":
        return _migrate(settings, out, err)
    from mcp_desk.app import create_app

    app = create_app(settings, transport="http" if args.command == "check-config" else "stdio")
    if args.command == "check-config":
        return _check_config(settings, app.auth is not None, out)
    if args.command == "keys":
        from mcp_desk.policy.keys import command_keys_create

        return command_keys_create(args.principal, args.role, args.json, out, roles=app.policy.role_names(), err=err)
    return _explain(app, args.role, out)


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

    from mcp_desk.app import create_app
    from mcp_desk.logging import configure_logging
    from mcp_desk.policy.redaction import Redactor
    from mcp_desk.sessions import install_session_id_filter
    from mcp_desk.transports import serve_http, serve_stdio

    configure_logging(settings.log_level, settings.resolved_log_format, redact=Redactor().text)
    install_session_id_filter()
    if command == "stdio":
        anyio.run(serve_stdio, create_app(settings, transport="stdio"), backend_options={"use_uvloop": True})
        return 0
    app = create_app(settings, transport="http")

    async def main() -> None:
        await serve_http(app, host=settings.host, port=settings.port)

    anyio.run(main, backend_options={"use_uvloop": True})
    return 0
