"""The MCP conformance suite's fixtures: tools, resources and prompts registered next to the shipped ones.

They go through the same public registration as the product's own (`create_app(tools=, resources=,
prompts=)`), so every scenario runs through the same transport, auth and guards as a real call. The tools
live in `conformance_tools`; this module adds the suite's `test://` resources and test prompts, and
`conformance_app()` builds the app serving the shipped sets plus all of them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from mcp.types import InputRequiredResult, PromptArgument

from mcp_desk.app import SHIPPED_TOOLS, App, Transport, create_app
from mcp_desk.config import Settings
from mcp_desk.policy.pipeline import ToolSpec
from mcp_desk.prompts import SHIPPED_PROMPTS, PromptSpec
from mcp_desk.resources import SHIPPED_RESOURCES, ResourceSpec
from tests.support.conformance_tools import (
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
class Profile:
    """The fixtures' tools, resources and prompts."""

    tools: tuple[ToolSpec, ...] = ()
    resources: tuple[ResourceSpec, ...] = ()
    prompts: tuple[PromptSpec, ...] = ()


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


def conformance_resources() -> tuple[ResourceSpec, ...]:
    """The suite's `test://` resources and its one template."""
    return (
        ResourceSpec(
            uri="test://static-text",
            name="static-text",
            description="A static text resource for testing",
            mime_type="text/plain",
            read=_static_text,
        ),
        ResourceSpec(
            uri="test://static-binary",
            name="static-binary",
            description="A static binary resource (image)",
            mime_type="image/png",
            read=_static_binary,
        ),
        ResourceSpec(
            uri="test://watched-resource",
            name="watched-resource",
            description="A resource that can be subscribed to",
            mime_type="text/plain",
            read=_watched,
        ),
        ResourceSpec(
            uri="test://template/{id}/data",
            name="template-data",
            description="A resource template with parameter substitution",
            mime_type="application/json",
            read=_template_data,
        ),
    )


def conformance_prompts() -> tuple[PromptSpec, ...]:
    """The suite's test prompts."""

    def required(*, name: str, description: str) -> PromptArgument:
        return PromptArgument(name=name, description=description, required=True)

    return (
        PromptSpec(name="test_simple_prompt", description="A simple prompt without arguments", render=_simple_prompt),
        PromptSpec(
            name="test_prompt_with_arguments",
            description="A prompt with required arguments",
            render=_prompt_with_arguments,
            arguments=(
                required(name="arg1", description="First test argument"),
                required(name="arg2", description="Second test argument"),
            ),
        ),
        PromptSpec(
            name="test_prompt_with_embedded_resource",
            description="A prompt that embeds a resource",
            render=_prompt_with_embedded_resource,
            arguments=(required(name="resourceUri", description="URI of the resource to embed"),),
        ),
        PromptSpec(
            name="test_prompt_with_image", description="A prompt that includes image content", render=_prompt_with_image
        ),
        PromptSpec(
            name="test_input_required_result_prompt",
            description="A prompt that asks for context first",
            render=_input_required_prompt,
        ),
    )


def conformance_profile() -> Profile:
    """The whole fixture set."""
    return Profile(tools=conformance_tools(), resources=conformance_resources(), prompts=conformance_prompts())


def conformance_app(settings: Settings, *, transport: Transport) -> App:
    """The shipped server plus every fixture, registered the way the app registers its own."""
    profile = conformance_profile()
    return create_app(
        settings,
        transport=transport,
        tools=(*SHIPPED_TOOLS, *profile.tools),
        resources=(*SHIPPED_RESOURCES, *profile.resources),
        prompts=(*SHIPPED_PROMPTS, *profile.prompts),
    )
