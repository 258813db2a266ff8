"""The MCP conformance suite's fixtures as our own specs: test-only, never in the shipped server.

Suite: npm `@modelcontextprotocol/conformance` 0.2.0-alpha.12 (pinned in tests/interop/package.json).
The suite's server scenarios call tools, resources and prompts by fixed names; registering them
through our registry sends every scenario through the same transport, auth and guards as a real call.

Tools are `ToolSpec`s whose `fn(env, **arguments)` returns an MCP result model (`CallToolResult` or
`InputRequiredResult`); the registry passes such a result through as-is (see `RESULT_MODELS`).
Fixtures that talk back to the client (progress, logs, sampling, elicitation, multi-round input)
use `env.client`, a `ClientChannel` the registry builds from the SDK request context.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from mcp.types import CallToolResult, InputRequiredResult

from server.errors import AppError, InvalidInput
from server.policy.pipeline import READ_ONLY, ToolSpec

MODERN_ERA = "2026-07-28"
IMAGE_PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
STEP_PAUSE_SECONDS = 0.05  # the suite expects notifications spread over the call, not one burst
RESULT_MODELS = (CallToolResult, InputRequiredResult)


class ClientChannel(Protocol):
    """The caller's connection, as a fixture needs it; the registry adapts the SDK context to this."""

    @property
    def protocol_version(self) -> str | None: ...
    @property
    def client_capabilities(self) -> Mapping[str, Any]: ...
    @property
    def input_responses(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def request_state(self) -> str | None: ...

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None: ...
    async def log(self, level: str, message: str) -> None: ...
    async def request(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]: ...


class FixtureEnv(Protocol):
    """The part of `ToolEnv` the fixtures use."""

    @property
    def client(self) -> ClientChannel: ...


def text(value: str, *, is_error: bool = False) -> CallToolResult:
    """A result holding one text block."""
    return CallToolResult.model_validate({"content": [{"type": "text", "text": value}], "isError": is_error})


def blocks(*content: dict[str, Any]) -> CallToolResult:
    """A result holding the given content blocks, exactly as the suite expects them on the wire."""
    return CallToolResult.model_validate({"content": list(content)})


def input_required(requests: dict[str, dict[str, Any]], state: str | None = None) -> InputRequiredResult:
    """Ask the client for more input before finishing (2026-07-28 multi-round requests)."""
    payload: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        payload["requestState"] = state
    return InputRequiredResult.model_validate(payload)


def elicit_request(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An `elicitation/create` request for a flat form."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def sampling_request(prompt: str, max_tokens: int) -> dict[str, Any]:
    """A `sampling/createMessage` request for one user message."""
    message = {"role": "user", "content": {"type": "text", "text": prompt}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


ROOTS_REQUEST: dict[str, Any] = {"method": "roots/list", "params": {}}
IMAGE_BLOCK = {"type": "image", "data": IMAGE_PNG_BASE64, "mimeType": "image/png"}


def _modern(env: FixtureEnv) -> bool:
    return env.client.protocol_version == MODERN_ERA


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- content fixtures (both eras) ------------------------------------------------------------


async def test_simple_text(env: FixtureEnv) -> CallToolResult:
    """Tests simple text content response."""
    return text("This is a simple text response for testing.")


async def test_image_content(env: FixtureEnv) -> CallToolResult:
    """Tests image content response."""
    return blocks(IMAGE_BLOCK)


async def test_audio_content(env: FixtureEnv) -> CallToolResult:
    """Tests audio content response."""
    return blocks({"type": "audio", "data": AUDIO_WAV_BASE64, "mimeType": "audio/wav"})


async def test_embedded_resource(env: FixtureEnv) -> CallToolResult:
    """Tests embedded resource content response."""
    resource = {
        "uri": "test://embedded-resource",
        "mimeType": "text/plain",
        "text": "This is an embedded resource content.",
    }
    return blocks({"type": "resource", "resource": resource})


async def test_multiple_content_types(env: FixtureEnv) -> CallToolResult:
    """Tests response with multiple content types (text, image, resource)."""
    resource = {
        "uri": "test://mixed-content-resource",
        "mimeType": "application/json",
        "text": _compact({"test": "data", "value": 123}),
    }
    return blocks(
        {"type": "text", "text": "Multiple content types test:"},
        IMAGE_BLOCK,
        {"type": "resource", "resource": resource},
    )


async def test_error_handling(env: FixtureEnv) -> CallToolResult:
    """Tests error response handling: always fails, as a tool error through the pipeline."""
    raise AppError("This tool intentionally returns an error for testing")


async def test_tool_with_logging(env: FixtureEnv) -> CallToolResult:
    """Tests a tool that emits log messages during execution."""
    for step, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
        if step:
            await anyio.sleep(STEP_PAUSE_SECONDS)
        await env.client.log("info", message)
    return text("Tool with logging executed successfully")


async def test_tool_with_progress(env: FixtureEnv) -> CallToolResult:
    """Tests a tool that reports progress notifications."""
    for progress in (0, 50, 100):
        if progress:
            await anyio.sleep(STEP_PAUSE_SECONDS)
        await env.client.report_progress(progress, 100, f"Completed step {progress} of 100")
    return text("Progress completed")


# -- server-to-client requests, handshake era ------------------------------------------------


def _elicited(action: str, content: object) -> str:
    return f"action={action}, content={_compact(content or {})}"


async def test_sampling(env: FixtureEnv, prompt: str) -> CallToolResult:
    """Tests server-initiated sampling (LLM completion request)."""
    result = await env.client.request("sampling/createMessage", sampling_request(prompt, 100)["params"])
    content = result.get("content") or {}
    return text(f"LLM response: {content.get('text', 'No response')}")


async def test_elicitation(env: FixtureEnv, message: str) -> CallToolResult:
    """Tests server-initiated elicitation (user input request)."""
    properties = {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    }
    result = await env.client.request(
        "elicitation/create", elicit_request(message, properties, ["username", "email"])["params"]
    )
    return text(f"User response: {_elicited(result.get('action', 'cancel'), result.get('content'))}")


SEP1034_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "description": "User name", "default": "John Doe"},
    "age": {"type": "integer", "description": "User age", "default": 30},
    "score": {"type": "number", "description": "User score", "default": 95.5},
    "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
    "verified": {"type": "boolean", "description": "Verification status", "default": True},
}
SEP1330_PROPERTIES: dict[str, Any] = {
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {
        "type": "string",
        "oneOf": [
            {"const": "value1", "title": "First Option"},
            {"const": "value2", "title": "Second Option"},
            {"const": "value3", "title": "Third Option"},
        ],
    },
    "legacyEnum": {
        "type": "string",
        "enum": ["opt1", "opt2", "opt3"],
        "enumNames": ["Option One", "Option Two", "Option Three"],
    },
    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    "titledMulti": {
        "type": "array",
        "items": {
            "anyOf": [
                {"const": "value1", "title": "First Choice"},
                {"const": "value2", "title": "Second Choice"},
                {"const": "value3", "title": "Third Choice"},
            ]
        },
    },
}


async def _elicit_form(env: FixtureEnv, message: str, properties: dict[str, Any]) -> CallToolResult:
    result = await env.client.request("elicitation/create", elicit_request(message, properties, [])["params"])
    return text(f"Elicitation completed: {_elicited(result.get('action', 'cancel'), result.get('content'))}")


async def test_elicitation_sep1034_defaults(env: FixtureEnv) -> CallToolResult:
    """Tests elicitation with default values for all primitive types (SEP-1034)."""
    return await _elicit_form(env, "Please provide user information", SEP1034_PROPERTIES)


async def test_elicitation_sep1330_enums(env: FixtureEnv) -> CallToolResult:
    """Tests elicitation with enum schema variations (SEP-1330)."""
    return await _elicit_form(env, "Please select values using different enum schema types", SEP1330_PROPERTIES)


# -- multi-round input, 2026-07-28 (SEP-2322) ------------------------------------------------

NAME_REQUEST = elicit_request("What is your name?", {"name": {"type": "string"}}, ["name"])
ToolResult = CallToolResult | InputRequiredResult


def _answer(env: FixtureEnv, key: str) -> Mapping[str, Any] | None:
    response = env.client.input_responses.get(key)
    return response if isinstance(response, Mapping) else None


def _field(response: Mapping[str, Any] | None, name: str) -> Any:
    content = (response or {}).get("content")
    return content.get(name) if isinstance(content, Mapping) else None


async def test_input_required_result_elicitation(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for the caller's name, then greets them."""
    name = _field(_answer(env, "user_name"), "name")
    return text(f"Hello, {name}!") if isinstance(name, str) else input_required({"user_name": NAME_REQUEST})


async def test_input_required_result_sampling(env: FixtureEnv) -> ToolResult:
    """MRTR: asks the client's model a question, then reports the answer."""
    answer = _answer(env, "capital_question")
    if answer is None:
        return input_required({"capital_question": sampling_request("What is the capital of France?", 100)})
    return text(f"Sampling result: {_field(answer, 'text') or 'no response'}")


async def test_input_required_result_list_roots(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for the client's roots, then lists them."""
    answer = _answer(env, "client_roots")
    if answer is None:
        return input_required({"client_roots": ROOTS_REQUEST})
    uris = [root.get("uri") for root in answer.get("roots") or [] if isinstance(root, Mapping)]
    return text(f"Found {len(uris)} root(s): {', '.join(map(str, uris))}")


async def test_input_required_result_request_state(env: FixtureEnv) -> ToolResult:
    """MRTR: round-trips requestState and confirms it came back intact."""
    confirm = elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
    if _answer(env, "confirm") is None or env.client.request_state != "awaiting-confirm":
        return input_required({"confirm": confirm}, "awaiting-confirm")
    return text("state-ok: confirmation received")


async def test_input_required_result_multiple_inputs(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for an elicitation, a sampling and the roots in one round."""
    requests = {
        "user_name": NAME_REQUEST,
        "greeting": sampling_request("Generate a greeting", 50),
        "client_roots": ROOTS_REQUEST,
    }
    if any(_answer(env, key) is None for key in requests) or env.client.request_state != "awaiting-all":
        return input_required(requests, "awaiting-all")
    return text(f"All inputs received for {_field(_answer(env, 'user_name'), 'name')}")


async def test_input_required_result_multi_round(env: FixtureEnv) -> ToolResult:
    """MRTR: two elicitation rounds with evolving requestState."""
    color = elicit_request("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
    if env.client.request_state == "round-2" and _answer(env, "step2") is not None:
        return text(f"Completed: color={_field(_answer(env, 'step2'), 'color')}")
    if env.client.request_state == "round-1" and _answer(env, "step1") is not None:
        return input_required({"step2": color}, "round-2")
    step1 = elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    return input_required({"step1": step1}, "round-1")


async def test_input_required_result_tampered_state(env: FixtureEnv) -> ToolResult:
    """MRTR: requestState is sealed by the SDK; a tampered state never reaches this function."""
    if env.client.request_state == "tamper-proof" and _answer(env, "user_name") is not None:
        return text("state verified")
    return input_required({"user_name": NAME_REQUEST}, "tamper-proof")


async def test_input_required_result_capabilities(env: FixtureEnv) -> ToolResult:
    """MRTR: only asks for what the client declared it can answer."""
    capabilities = env.client.client_capabilities
    requests: dict[str, dict[str, Any]] = {}
    if "sampling" in capabilities:
        requests["greeting"] = sampling_request("Generate a greeting", 50)
    if "elicitation" in capabilities:
        requests["user_name"] = NAME_REQUEST
    if not requests or all(_answer(env, key) is not None for key in requests):
        return text("capabilities respected")
    return input_required(requests)


async def test_missing_capability(env: FixtureEnv) -> CallToolResult:
    """Needs the client's sampling capability; refused when it was not declared."""
    if "sampling" not in env.client.client_capabilities:
        raise InvalidInput("Missing required client capability: sampling", required_capabilities={"sampling": {}})
    return text("sampling capability present")


# -- resources and prompts -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceFixture:
    """A fixed resource, or a template when `uri` holds `{placeholders}`; `read(env, **params)`."""

    uri: str
    name: str
    description: str
    mime_type: str
    read: Callable[..., Awaitable[str | bytes]]


@dataclass(frozen=True, kw_only=True, slots=True)
class PromptArgument:
    """One named prompt argument."""

    name: str
    description: str
    required: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class PromptFixture:
    """A prompt: `render(env, **arguments)` returns wire-shaped messages, or asks for input first."""

    name: str
    description: str
    render: Callable[..., Awaitable[list[dict[str, Any]] | InputRequiredResult]]
    arguments: tuple[PromptArgument, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """Extra tools, resources and prompts registered next to the product's own (tests only)."""

    tools: tuple[ToolSpec, ...] = ()
    resources: tuple[ResourceFixture, ...] = ()
    prompts: tuple[PromptFixture, ...] = ()
    subscriptions: set[str] = field(default_factory=set)


async def _static_text(env: FixtureEnv) -> str:
    return "This is the content of the static text resource."


async def _static_binary(env: FixtureEnv) -> bytes:
    return base64.b64decode(IMAGE_PNG_BASE64)


async def _template_data(env: FixtureEnv, id: str) -> str:
    return _compact({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


async def _watched(env: FixtureEnv) -> str:
    return "Watched resource content"


def _user(content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def _simple_prompt(env: FixtureEnv) -> list[dict[str, Any]]:
    return [_user({"type": "text", "text": "This is a simple prompt for testing."})]


async def _prompt_with_arguments(env: FixtureEnv, arg1: str, arg2: str) -> list[dict[str, Any]]:
    return [_user({"type": "text", "text": f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"})]


async def _prompt_with_embedded_resource(env: FixtureEnv, resourceUri: str) -> list[dict[str, Any]]:
    resource = {"uri": resourceUri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}
    return [
        _user({"type": "resource", "resource": resource}),
        _user({"type": "text", "text": "Please process the embedded resource above."}),
    ]


async def _prompt_with_image(env: FixtureEnv) -> list[dict[str, Any]]:
    return [_user(IMAGE_BLOCK), _user({"type": "text", "text": "Please analyze the image above."})]


async def _input_required_prompt(env: FixtureEnv) -> list[dict[str, Any]] | InputRequiredResult:
    context = _field(_answer(env, "user_context"), "context")
    if not isinstance(context, str):
        ask = elicit_request("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
        return input_required({"user_context": ask})
    return [_user({"type": "text", "text": f"Use this context: {context}"})]


def conformance_tools() -> tuple[ToolSpec, ...]:
    """Every fixture tool the suite's server scenarios call; none needs a scope."""
    fns = (
        test_simple_text,
        test_image_content,
        test_audio_content,
        test_embedded_resource,
        test_multiple_content_types,
        test_error_handling,
        test_tool_with_logging,
        test_tool_with_progress,
        test_sampling,
        test_elicitation,
        test_elicitation_sep1034_defaults,
        test_elicitation_sep1330_enums,
        test_input_required_result_elicitation,
        test_input_required_result_sampling,
        test_input_required_result_list_roots,
        test_input_required_result_request_state,
        test_input_required_result_multiple_inputs,
        test_input_required_result_multi_round,
        test_input_required_result_tampered_state,
        test_input_required_result_capabilities,
        test_missing_capability,
    )
    return tuple(ToolSpec(name=fn.__name__, fn=fn, scope=None, annotations=READ_ONLY) for fn in fns)


def conformance_resources() -> tuple[ResourceFixture, ...]:
    """The suite's `test://` resources and its one template."""
    return (
        ResourceFixture(
            uri="test://static-text",
            name="static-text",
            description="A static text resource for testing",
            mime_type="text/plain",
            read=_static_text,
        ),
        ResourceFixture(
            uri="test://static-binary",
            name="static-binary",
            description="A static binary resource (image)",
            mime_type="image/png",
            read=_static_binary,
        ),
        ResourceFixture(
            uri="test://watched-resource",
            name="watched-resource",
            description="A resource that can be subscribed to",
            mime_type="text/plain",
            read=_watched,
        ),
        ResourceFixture(
            uri="test://template/{id}/data",
            name="template-data",
            description="A resource template with parameter substitution",
            mime_type="application/json",
            read=_template_data,
        ),
    )


def conformance_prompts() -> tuple[PromptFixture, ...]:
    """The suite's test prompts."""
    required = PromptArgument
    return (
        PromptFixture(
            name="test_simple_prompt", description="A simple prompt without arguments", render=_simple_prompt
        ),
        PromptFixture(
            name="test_prompt_with_arguments",
            description="A prompt with required arguments",
            render=_prompt_with_arguments,
            arguments=(
                required(name="arg1", description="First test argument"),
                required(name="arg2", description="Second test argument"),
            ),
        ),
        PromptFixture(
            name="test_prompt_with_embedded_resource",
            description="A prompt that embeds a resource",
            render=_prompt_with_embedded_resource,
            arguments=(required(name="resourceUri", description="URI of the resource to embed"),),
        ),
        PromptFixture(
            name="test_prompt_with_image", description="A prompt that includes image content", render=_prompt_with_image
        ),
        PromptFixture(
            name="test_input_required_result_prompt",
            description="A prompt that asks for context first",
            render=_input_required_prompt,
        ),
    )


def conformance_profile() -> Profile:
    """The whole fixture set, for `create_app(settings, profile=conformance_profile())`."""
    return Profile(tools=conformance_tools(), resources=conformance_resources(), prompts=conformance_prompts())
