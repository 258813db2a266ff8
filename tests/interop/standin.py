"""TEMPORARY stand-in for `mcp-desk` while main has no server yet; delete once `server.app` lands.

It speaks the same command line the interop tests drive (`http --port P`, `stdio`,
`keys create --principal P --role R --json`, `MCP_DESK_API_KEYS_FILE`) with a few desk-like tools,
and shows how the registry can take the conformance profile (`register_profile`).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    Completion,
    EmptyResult,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import AppError
from server.testing.conformance import Profile, conformance_profile


class Note(BaseModel):
    """A note."""

    id: str
    version: int
    title: str
    body: str


def build_server(profile: Profile | None = None) -> MCPServer:
    """A desk-like MCP server: notes, a resource, a prompt, completions, logging, subscriptions."""
    mcp = MCPServer("mcp-desk")
    store = Path(os.environ.get("MCP_DESK_STORAGE_PATH", "data")) / "standin-notes.json"
    notes: dict[str, Note] = {k: Note(**v) for k, v in json.loads(store.read_text()).items()} if store.exists() else {}

    @mcp.tool(description="Create a note owned by the caller.")
    async def create_note(title: str, body: str) -> Note:
        note = Note(id=f"n{len(notes) + 1}", version=1, title=title, body=body)
        notes[note.id] = note
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps({k: v.model_dump() for k, v in notes.items()}))
        return note

    @mcp.tool(description="Fetch one of the caller's notes.")
    async def get_note(note_id: str) -> Note:
        if note_id not in notes:
            raise ToolError(f"not_found: note {note_id} does not exist")
        return notes[note_id]

    @mcp.resource("note://{note_id}", mime_type="application/json", description="A note as JSON.")
    async def note_resource(note_id: str) -> str:
        return notes[note_id].model_dump_json()

    @mcp.prompt(description="Triage a ticket.")
    async def triage_ticket(ticket_id: str) -> str:
        return f"Triage ticket {ticket_id}: read it, set a priority, assign it."

    @mcp.completion()  # type: ignore[untyped-decorator,no-untyped-call]  # the SDK leaves it untyped
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        return Completion(values=[], total=0, has_more=False)

    lowlevel = mcp._lowlevel_server

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    async def subscribe(ctx: Any, params: SubscribeRequestParams | UnsubscribeRequestParams) -> EmptyResult:
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, subscribe)
    if profile is not None:
        register_profile(mcp, profile)
    return mcp


# -- the registry hook, sketched: how the lead's registry can take a Profile ----------------


@dataclass(frozen=True)
class SdkChannel:
    """`ClientChannel` over the SDK's request context."""

    ctx: Context

    @property
    def protocol_version(self) -> str | None:
        """Negotiated protocol version."""
        return self.ctx.protocol_version

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """Capabilities the client declared."""
        caps = self.ctx.client_capabilities
        return caps.model_dump(by_alias=True, exclude_none=True) if caps else {}

    @property
    def input_responses(self) -> Mapping[str, Mapping[str, Any]]:
        """Answers to a previous input_required round, as wire dicts."""
        answers = self.ctx.input_responses or {}
        return {key: value.model_dump(by_alias=True, exclude_none=True) for key, value in answers.items()}

    @property
    def request_state(self) -> str | None:
        """requestState echoed by the client."""
        return self.ctx.request_state

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """Send notifications/progress."""
        await self.ctx.report_progress(progress, total, message)

    async def log(self, level: str, message: str) -> None:
        """Send notifications/message."""
        await self.ctx.log(level, message)  # type: ignore[arg-type]  # levels come from our fixtures

    async def request(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Send a server-to-client request (handshake era)."""
        session = self.ctx.session
        if method == "sampling/createMessage":
            messages = [SamplingMessage.model_validate(m) for m in params["messages"]]
            result = await session.create_message(messages=messages, max_tokens=params["maxTokens"])
        else:
            result = await session.elicit_form(params["message"], params["requestedSchema"], self.ctx.request_id)
        dumped: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
        return dumped


@dataclass(frozen=True)
class FixtureEnvImpl:
    """The `env` a fixture receives."""

    client: SdkChannel | None


def _bridge(fn: Callable[..., Awaitable[Any]], *, with_ctx: bool = True) -> Callable[..., Awaitable[Any]]:
    """Wrap `fn(env, **kw)` as `wrapper(**kw, ctx)` with an explicit signature (no functools.wraps)."""
    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())[1:]
    if with_ctx:
        params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))

    async def wrapper(**kwargs: Any) -> Any:
        ctx = kwargs.pop("ctx", None)
        env = FixtureEnvImpl(client=SdkChannel(ctx) if ctx is not None else None)
        try:
            return await fn(env, **kwargs)
        except AppError as exc:
            if "required_capabilities" in exc.context:  # -32021 MissingRequiredClientCapability (2026-07-28)
                data = {"requiredCapabilities": exc.context["required_capabilities"]}
                raise MCPError(code=-32021, message=exc.public, data=data) from exc
            raise ToolError(f"{exc.code}: {exc.public}") from exc

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def register_profile(mcp: MCPServer, profile: Profile) -> None:
    """Register a profile's tools, resources and prompts on the SDK server."""
    for spec in profile.tools:
        mcp.add_tool(_bridge(spec.fn), name=spec.name, description=spec.fn.__doc__)
    for res in profile.resources:
        mcp.resource(res.uri, name=res.name, description=res.description, mime_type=res.mime_type)(
            _bridge(res.read, with_ctx=False)
        )
    for fixture in profile.prompts:
        arguments = [
            PromptArgument(name=a.name, description=a.description, required=a.required) for a in fixture.arguments
        ]
        prompt = Prompt.from_function(_bridge(fixture.render), name=fixture.name, description=fixture.description)
        mcp.add_prompt(prompt.model_copy(update={"arguments": arguments}))


# -- command line ---------------------------------------------------------------------------


class KeyAuth:
    """Bearer API keys from the keys file (`principal:role:sha256`), as mcp-desk will check them."""

    def __init__(self, app: ASGIApp, hashes: set[str]) -> None:
        self.app, self.hashes = app, hashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """401 unless the bearer key's hash is listed."""
        if scope["type"] == "http" and self.hashes:
            header = dict(scope["headers"]).get(b"authorization", b"").decode()
            key = header.removeprefix("Bearer ").strip()
            if hashlib.sha256(key.encode()).hexdigest() not in self.hashes:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def _hashes() -> set[str]:
    path = os.environ.get("MCP_DESK_API_KEYS_FILE")
    if not path:
        return set()
    with open(path) as lines:
        return {line.strip().split(":")[-1] for line in lines if line.strip()}


def http_app(profile: Profile | None = None) -> ASGIApp:
    """The Streamable HTTP app at /mcp, with loopback DNS-rebinding protection."""
    security = TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    app = build_server(profile).streamable_http_app(transport_security=security)
    return KeyAuth(app, _hashes())


def main() -> None:
    """`standin http --port P [--conformance] | stdio | keys create --principal P --role R --json`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["http", "stdio", "keys"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--conformance", action="store_true")
    parser.add_argument("--principal")
    parser.add_argument("--role")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "keys":
        key = "mcpd_" + secrets.token_urlsafe(24)
        line = f"{args.principal}:{args.role}:{hashlib.sha256(key.encode()).hexdigest()}"
        sys.stdout.write(json.dumps({"key": key, "principal": args.principal, "role": args.role, "line": line}) + "\n")
    elif args.command == "stdio":
        anyio.run(build_server().run_stdio_async)
    else:
        profile = conformance_profile() if args.conformance else None
        uvicorn.run(http_app(profile), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
