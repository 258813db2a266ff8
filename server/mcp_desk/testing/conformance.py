"""The MCP conformance suite's fixtures as a test-only `Profile`: tools, resources and prompts.

Only tests pass a profile to `create_app(settings, profile=...)`; no CLI flag or setting can, so the
shipped server never serves these. The tools live in `conformance_tools`; this module adds the suite's
`test://` resources and test prompts and bundles everything as `conformance_profile()`.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.types import InputRequiredResult

from mcp_desk.policy.pipeline import ToolSpec
from mcp_desk.testing.conformance_tools import (
    IMAGE_BLOCK,
    IMAGE_PNG_BASE64,
    FixtureEnv,
    answer,
    compact,
    conformance_tools,
    elicit_request,
    field_of,
    input_required,
)


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


async def _static_text(env: FixtureEnv) -> str:
    return "This is the content of the static text resource."


async def _static_binary(env: FixtureEnv) -> bytes:
    return base64.b64decode(IMAGE_PNG_BASE64)


async def _template_data(env: FixtureEnv, id: str) -> str:
    return compact({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


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
    context = field_of(answer(env, "user_context"), "context")
    if not isinstance(context, str):
        ask = elicit_request("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
        return input_required({"user_context": ask})
    return [_user({"type": "text", "text": f"Use this context: {context}"})]


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
