"""server.json, the description of the server for MCP registries.

No npm or PyPI package here ships the registry's JSON schema, so SCHEMA below is written from the
documented fields of the server.json format (schema version named by `$schema`): required fields,
name pattern, length limits, package and transport shapes. The rest of the file checks that the
description agrees with the project it describes.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs pinned; validation only

from tests.ops.deploy_support import PROJECT, PROJECT_URL, REPO, SERVER_JSON

_INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "default": {"type": "string"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
    },
}
_ARGUMENT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["positional", "named"]}, "value": {"type": "string"}},
    "anyOf": [{"required": ["value"]}, {"required": ["valueHint"]}, {"required": ["name"]}],
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["$schema", "name", "description", "version"],
    "properties": {
        "$schema": {
            "type": "string",
            "pattern": r"^https://static\.modelcontextprotocol\.io/schemas/.+/server\.schema\.json$",
        },
        "name": {"type": "string", "pattern": r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", "minLength": 3, "maxLength": 200},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "minLength": 1, "maxLength": 255, "not": {"pattern": r"[\^~><=*x]|latest"}},
        "repository": {
            "type": "object",
            "required": ["url", "source"],
            "properties": {"url": {"type": "string", "format": "uri"}, "source": {"type": "string"}},
        },
        "packages": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["registryType", "identifier", "version", "transport"],
                "properties": {
                    "registryType": {"enum": ["npm", "pypi", "oci", "nuget", "mcpb"]},
                    "registryBaseUrl": {"type": "string", "format": "uri"},
                    "identifier": {"type": "string", "minLength": 1},
                    "version": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
                    "fileSha256": {"type": "string", "pattern": "^[a-f0-9]{64}$"},
                    "runtimeHint": {"type": "string"},
                    "transport": {
                        "oneOf": [
                            {"type": "object", "required": ["type"], "properties": {"type": {"const": "stdio"}}},
                            {
                                "type": "object",
                                "required": ["type", "url"],
                                "properties": {"type": {"enum": ["streamable-http", "sse"]}, "url": {"type": "string"}},
                            },
                        ]
                    },
                    "runtimeArguments": {"type": "array", "items": _ARGUMENT},
                    "packageArguments": {"type": "array", "items": _ARGUMENT},
                    "environmentVariables": {"type": "array", "items": _INPUT},
                },
            },
        },
    },
}


def test_server_json_matches_the_documented_server_json_fields() -> None:
    jsonschema.validate(SERVER_JSON, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_the_schema_check_refuses_what_registries_refuse() -> None:
    for broken in (
        {**SERVER_JSON, "name": "no-namespace"},
        {**SERVER_JSON, "description": "x" * 101},
        {**SERVER_JSON, "version": "^1.0"},
        {**SERVER_JSON, "packages": [{**SERVER_JSON["packages"][0], "version": "latest"}]},
        {**SERVER_JSON, "packages": [{**SERVER_JSON["packages"][0], "transport": {"type": "streamable-http"}}]},
    ):
        validator = jsonschema.Draft202012Validator(SCHEMA)
        assert list(validator.iter_errors(broken)), broken


def test_server_json_describes_this_project() -> None:
    assert SERVER_JSON["version"] == PROJECT["version"]
    assert SERVER_JSON["repository"]["url"] == PROJECT_URL
    packages = {p["registryType"]: p for p in SERVER_JSON["packages"]}
    assert packages["pypi"]["identifier"] == PROJECT["name"]
    assert packages["pypi"]["version"] == PROJECT["version"]
    assert packages["pypi"]["packageArguments"] == [{"type": "positional", "value": "stdio"}]
    assert packages["oci"]["version"] == PROJECT["version"]
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9._/-]+", packages["oci"]["identifier"])


def test_the_pypi_package_readme_names_the_server_for_registry_ownership_checks() -> None:
    """Registries confirm a PyPI package belongs to a server by `mcp-name: <name>` in its README."""
    assert f"mcp-name: {SERVER_JSON['name']}" in (REPO / "README.md").read_text()
    assert PROJECT["readme"] == "README.md"
