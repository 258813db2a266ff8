"""The conformance profile through our own registry, guards, resources and prompts (in memory, no Node)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError

from mcp_desk.app import App, create_app
from tests.conftest import REPO, MakeSettings, connected, text_of
from tests.support.conformance import conformance_app
from tests.support.conformance_tools import IMAGE_PNG_BASE64

DEFAULT_POLICY = REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml"
MODERN = "2026-07-28"

pytestmark = pytest.mark.anyio


def profile_app(make_settings: MakeSettings, **overrides: Any) -> App:
    """The app as the interop tests build it: the shipped server plus the suite's fixtures."""
    return conformance_app(make_settings(**overrides), transport="memory")


def audit_records(app: App) -> list[dict[str, Any]]:
    """Every record of the app's audit log."""
    path = app.settings.resolved_audit_log_path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_the_shipped_server_serves_no_fixture(make_settings: MakeSettings) -> None:
    app = create_app(make_settings(), transport="memory")
    async with connected(app) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        templates = (await client.list_resource_templates()).resource_templates

    assert not {name for name in tools | prompts if name.startswith("test_")}
    assert not [t for t in templates if t.uri_template.startswith("test://")]


async def test_a_fixture_result_reaches_the_client_as_the_tool_built_it(make_settings: MakeSettings) -> None:
    app = profile_app(make_settings)
    async with connected(app) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("test_image_content", {})

    assert listed["test_image_content"].output_schema is None
    assert not result.is_error
    assert result.structured_content is None
    image = result.content[0]
    assert isinstance(image, types.ImageContent)
    assert (image.data, image.mime_type) == (IMAGE_PNG_BASE64, "image/png")


async def test_fixture_calls_are_audited_like_any_tool_call(make_settings: MakeSettings) -> None:
    app = profile_app(make_settings)
    async with connected(app) as client:
        failed = await client.call_tool("test_error_handling", {})
        await client.call_tool("test_simple_text", {})

    assert failed.is_error
    assert "intentionally returns an error" in text_of(failed)
    tools = [record.get("tool") for record in audit_records(app)]
    assert "test_error_handling" in tools
    assert "test_simple_text" in tools


async def test_a_caller_without_the_fixture_scope_neither_sees_nor_runs_fixtures(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + '\n[roles.notes_only]\nscopes = ["notes:read"]\n')
    app = profile_app(make_settings, policy_file=policy, stdio_role="notes_only")
    async with connected(app) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        refused = await client.call_tool("test_simple_text", {})

    assert "test_simple_text" not in tools
    assert refused.is_error
    assert "docs:read" in text_of(refused)


async def test_a_missing_client_capability_is_protocol_error_32021(make_settings: MakeSettings) -> None:
    async with connected(profile_app(make_settings), mode=MODERN) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("test_missing_capability", {})

    assert caught.value.error.code == -32021
    assert caught.value.error.data == {"requiredCapabilities": {"sampling": {}}}


async def test_a_multi_round_call_resumes_with_the_state_the_server_sealed(make_settings: MakeSettings) -> None:
    asked: list[str] = []

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada", "color": "blue"})

    async with connected(profile_app(make_settings), mode=MODERN, elicitation_callback=answer) as client:
        result = await client.call_tool("test_input_required_result_multi_round", {})

    assert text_of(result) == "Completed: color=blue"
    assert asked == ["Step 1: What is your name?", "Step 2: What is your favorite color?"]


async def test_profile_resources_are_listed_and_read_as_text_blob_and_template(make_settings: MakeSettings) -> None:
    async with connected(profile_app(make_settings)) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        binary = (await client.read_resource("test://static-binary")).contents[0]
        templated = (await client.read_resource("test://template/42/data")).contents[0]

    assert {"test://static-text", "test://static-binary", "test://watched-resource"} <= listed
    assert "test://template/{id}/data" in templates
    assert isinstance(binary, types.BlobResourceContents)
    assert base64.b64decode(binary.blob) == base64.b64decode(IMAGE_PNG_BASE64)
    assert isinstance(templated, types.TextResourceContents)
    assert json.loads(templated.text)["id"] == "42"


async def test_profile_prompts_render_their_arguments_and_require_them(make_settings: MakeSettings) -> None:
    async with connected(profile_app(make_settings)) as client:
        got = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "a"})

    content = got.messages[0].content
    assert isinstance(content, types.TextContent)
    assert content.text == "Prompt with arguments: arg1='a', arg2='b'"
    assert "arg2" in caught.value.error.message
