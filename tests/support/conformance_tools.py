"""The MCP conformance suite's fixture tools as our own `ToolSpec`s: test-only, never in the package.

Suite: npm `@modelcontextprotocol/conformance` 0.2.0-alpha.12 (pinned in tests/interop/package.json).
The suite's server scenarios call tools by fixed names; registering them through our registry sends every
scenario through the same transport, auth and guards as a real call.

A fixture's `fn(env, **arguments)` returns an MCP result model (`CallToolResult` or `InputRequiredResult`);
the registry passes such a result through as-is (`mcp_desk.registry.RESULT_MODELS`). Fixtures that talk back
to the client (progress, logs, sampling, elicitation, multi-round input) use `env.client`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
from mcp.types import CallToolResult, InputRequiredResult

from mcp_desk.errors import AppError, MissingClientCapability
from mcp_desk.policy.pipeline import READ_ONLY, ClientChannel, ToolSpec

IMAGE_PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
STEP_PAUSE_SECONDS = 0.05  # the suite expects notifications spread over the call, not one burst
# A scope every default role holds, so the authorize guard really runs for the fixtures.
FIXTURE_SCOPE = "docs:read"


class FixtureEnv(Protocol):
    """The part of the env (`ToolEnv`, for tools, resources and prompts alike) fixtures use."""

    @property
    def client(self) -> ClientChannel:
        """The caller's connection."""
        ...


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


def compact(value: object) -> str:
    """JSON without spaces, as the suite compares it."""
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
        "text": compact({"test": "data", "value": 123}),
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
    return f"action={action}, content={compact(content or {})}"


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


def answer(env: FixtureEnv, key: str) -> Mapping[str, Any] | None:
    """The client's answer to input request `key` of the previous round, if it sent one."""
    response = env.client.input_responses.get(key)
    return response if isinstance(response, Mapping) else None


def field_of(response: Mapping[str, Any] | None, name: str) -> Any:
    """A field of an answer's `content` (elicitation form data, sampled text)."""
    content = (response or {}).get("content")
    return content.get(name) if isinstance(content, Mapping) else None


async def test_input_required_result_elicitation(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for the caller's name, then greets them."""
    name = field_of(answer(env, "user_name"), "name")
    return text(f"Hello, {name}!") if isinstance(name, str) else input_required({"user_name": NAME_REQUEST})


async def test_input_required_result_sampling(env: FixtureEnv) -> ToolResult:
    """MRTR: asks the client's model a question, then reports the answer."""
    sampled = answer(env, "capital_question")
    if sampled is None:
        return input_required({"capital_question": sampling_request("What is the capital of France?", 100)})
    return text(f"Sampling result: {field_of(sampled, 'text') or 'no response'}")


async def test_input_required_result_list_roots(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for the client's roots, then lists them."""
    roots = answer(env, "client_roots")
    if roots is None:
        return input_required({"client_roots": ROOTS_REQUEST})
    uris = [root.get("uri") for root in roots.get("roots") or [] if isinstance(root, Mapping)]
    return text(f"Found {len(uris)} root(s): {', '.join(map(str, uris))}")


async def test_input_required_result_request_state(env: FixtureEnv) -> ToolResult:
    """MRTR: round-trips requestState and confirms it came back intact."""
    confirm = elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
    if answer(env, "confirm") is None or env.client.request_state != "awaiting-confirm":
        return input_required({"confirm": confirm}, "awaiting-confirm")
    return text("state-ok: confirmation received")


async def test_input_required_result_multiple_inputs(env: FixtureEnv) -> ToolResult:
    """MRTR: asks for an elicitation, a sampling and the roots in one round."""
    requests = {
        "user_name": NAME_REQUEST,
        "greeting": sampling_request("Generate a greeting", 50),
        "client_roots": ROOTS_REQUEST,
    }
    if any(answer(env, key) is None for key in requests) or env.client.request_state != "awaiting-all":
        return input_required(requests, "awaiting-all")
    return text(f"All inputs received for {field_of(answer(env, 'user_name'), 'name')}")


async def test_input_required_result_multi_round(env: FixtureEnv) -> ToolResult:
    """MRTR: two elicitation rounds with evolving requestState."""
    color = elicit_request("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
    if env.client.request_state == "round-2" and answer(env, "step2") is not None:
        return text(f"Completed: color={field_of(answer(env, 'step2'), 'color')}")
    if env.client.request_state == "round-1" and answer(env, "step1") is not None:
        return input_required({"step2": color}, "round-2")
    step1 = elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    return input_required({"step1": step1}, "round-1")


async def test_input_required_result_tampered_state(env: FixtureEnv) -> ToolResult:
    """MRTR: requestState is sealed by the SDK; a tampered state never reaches this function."""
    if env.client.request_state == "tamper-proof" and answer(env, "user_name") is not None:
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
    if not requests or all(answer(env, key) is not None for key in requests):
        return text("capabilities respected")
    return input_required(requests)


async def test_streaming_elicitation(env: FixtureEnv) -> ToolResult:
    """Stateless diagnostic: asks for input with an input_required result, never a request on the stream."""
    name = field_of(answer(env, "user_name"), "name")
    return text(f"Hello, {name}!") if isinstance(name, str) else input_required({"user_name": NAME_REQUEST})


async def test_logging_tool(env: FixtureEnv) -> CallToolResult:
    """Stateless diagnostic: logs at info; a client that asked for no log level hears nothing."""
    await env.client.log("info", "test_logging_tool ran")
    return text("logged")


async def test_missing_capability(env: FixtureEnv) -> CallToolResult:
    """Needs the client's sampling capability; refused when it was not declared."""
    if "sampling" not in env.client.client_capabilities:
        raise MissingClientCapability(
            "Missing required client capability: sampling", required_capabilities={"sampling": {}}
        )
    return text("sampling capability present")


def conformance_tools() -> tuple[ToolSpec, ...]:
    """Every fixture tool the suite's server scenarios call."""
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
        test_streaming_elicitation,
        test_logging_tool,
    )
    return tuple(ToolSpec(name=fn.__name__, fn=fn, scope=FIXTURE_SCOPE, annotations=READ_ONLY) for fn in fns)
