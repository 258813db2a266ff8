"""Installs outside a checkout: the wheel `uv build` makes, installed into a fresh virtual environment,
serves stdio from an unrelated working directory with the sample knowledge base and the default policy,
and keeps its data in the user's data directory, never the working directory."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import KB, ok
from tests.ops.deploy_support import REPO, compose_config, load_yaml, require, run

pytestmark = pytest.mark.slow


def _uv() -> str:
    uv = REPO / ".tools" / "bin" / "uv"
    require(uv.exists(), "uv not found: run `make install-dev` (it installs uv into .tools)")
    return str(uv)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `uv build` makes from this tree (through its sdist, as a release would)."""
    out = tmp_path_factory.mktemp("dist")
    result = run([_uv(), "build", "--out-dir", str(out)], cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    python = REPO / ".venv" / "bin" / "python"
    made = run([_uv(), "venv", "--quiet", "--python", str(python), str(venv)], timeout=120)
    assert made.returncode == 0, made.stderr
    done = run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)], timeout=600)
    require(done.returncode == 0, f"the wheel's dependencies cannot be installed here: {done.stderr.strip()[-500:]}")
    return venv


def _user_env(home: Path) -> dict[str, str]:
    """A desktop host's environment: no MCP_DESK_ settings, the user's own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_DESK_", "XDG_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"))
    return env


def test_the_wheel_holds_only_the_mcp_desk_package_with_the_kb_and_default_policy(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/", 1)[0] for name in names} == {
        "mcp_desk",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    shipped = {name.removeprefix("mcp_desk/kb/") for name in names if name.startswith("mcp_desk/kb/")}
    assert shipped == {p.name for p in KB.glob("*.md")}
    assert "mcp_desk/policy/default_policy.toml" in names


@pytest.mark.anyio
async def test_the_installed_wheel_serves_stdio_from_an_unrelated_directory_with_the_sample_kb(
    installed: Path, tmp_path: Path
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    server = StdioServerParameters(
        command=str(installed / "bin" / "mcp-desk"), args=["stdio"], env=_user_env(home), cwd=str(elsewhere)
    )
    with anyio.fail_after(60):
        async with Client(server) as client:
            found = ok(await client.call_tool("search_docs", {"query": "password reset"}))
            assert found["items"][0]["id"] == "password-reset.md"
            ok(await client.call_tool("create_note", {"title": "where does this go", "body": "b"}))
    assert list(elsewhere.iterdir()) == []
    assert (home / ".local" / "share" / "mcp-desk" / "mcp-desk.db").is_file()


def test_uvx_runs_the_wheel(wheel: Path, tmp_path: Path) -> None:
    result = run([_uv(), "tool", "run", "--from", str(wheel), "mcp-desk", "--version"], env=_user_env(tmp_path))
    require(result.returncode == 0 or "network" not in result.stderr, "uvx cannot fetch dependencies here")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mcp-desk 0.1.0"


def _readme_entries() -> list[dict[str, Any]]:
    """The Claude Desktop entries of the README, in order: checkout, uvx, docker."""
    section = (REPO / "README.md").read_text().split("## Use it from Claude Desktop", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```json\n")[1:]]
    return [json.loads(block)["mcpServers"]["mcp-desk"] for block in blocks]


@pytest.mark.anyio
async def test_the_readme_uvx_entry_serves_the_wheel_from_the_root_directory(wheel: Path, tmp_path: Path) -> None:
    entry = _readme_entries()[1]
    assert entry["command"] == "uvx"
    args = [str(wheel) if a.endswith(".whl") else a for a in entry["args"]]
    assert args != entry["args"]
    env = {**_user_env(tmp_path), "PATH": f"{Path(_uv()).parent}:{os.environ['PATH']}"}
    uvx = Path(_uv()).with_name("uvx")
    require(uvx.exists(), "uvx not found next to uv: run `make install-dev`")
    server = StdioServerParameters(command=str(uvx), args=args, env=env, cwd="/")
    with anyio.fail_after(120):
        async with Client(server) as client:
            found = ok(await client.call_tool("search_docs", {"query": "vpn"}))
            assert found["items"]
    assert (tmp_path / ".local" / "share" / "mcp-desk" / "mcp-desk.db").is_file()


def test_the_readme_docker_entry_runs_the_image_interactively_on_the_data_volume() -> None:
    """No container engine here: the entry is checked against the image's contract (tests/deploy runs it)."""
    entry = _readme_entries()[2]
    assert entry["command"] == "docker"
    args = entry["args"]
    assert args[:3] == ["run", "-i", "--rm"]
    assert "-t" not in args  # a TTY would mangle the JSON-RPC stream
    assert args[args.index("-v") + 1] == "mcp-desk-data:/data"
    assert args[-2:] == ["mcp-desk:local", "stdio"]
    assert load_yaml(REPO / "docker-compose.yml")["services"]["mcp-desk"]["image"] == "${DEPLOY_IMAGE:-mcp-desk:local}"
    assert compose_config()["volumes"]["mcp-desk-data"]["name"] == "mcp-desk-data"
