"""The `mcp-desk` command line (DESIGN §2)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from server.config import Settings, load_settings
from server.errors import ConfigError


def parser() -> argparse.ArgumentParser:
    """Subcommands and their flags."""
    top = argparse.ArgumentParser(prog="mcp-desk", description="A hardened MCP server for a support desk.")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("stdio", help="serve MCP over stdin/stdout (logs go to stderr)")
    http = sub.add_parser("http", help="serve Streamable HTTP at /mcp and the health sidecar")
    http.add_argument("--host", help="bind address (default MCP_DESK_HOST)")
    http.add_argument("--port", type=int, help="port (default MCP_DESK_PORT)")
    sub.add_parser("check-config", help="validate configuration and policy, print the effective config")
    return top


def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Parse argv and run one command; configuration errors are one line on stderr and exit code 1."""
    args = parser().parse_args(argv)
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None))) if v}
    try:
        settings = load_settings(**overrides)
        return _dispatch(args, settings, out)
    except ConfigError as exc:
        print(f"mcp-desk: configuration error: {exc}", file=err)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.command == "check-config":
        print(json.dumps(settings.masked(), indent=2, sort_keys=True), file=out)
        return 0
    return _serve(args.command, settings)


def _serve(command: str, settings: Settings) -> int:
    import anyio

    from server.app import create_app
    from server.transports import serve_http, serve_stdio

    if command == "stdio":
        anyio.run(serve_stdio, create_app(settings, transport="stdio"), backend_options={"use_uvloop": True})
        return 0
    app = create_app(settings, transport="http")

    async def main() -> None:
        await serve_http(app, host=settings.host, port=settings.port)

    anyio.run(main, backend_options={"use_uvloop": True})
    return 0
