"""The README's HTTP examples, run as written against a real `mcp-desk http` (ports filled in)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.conftest import REPO
from tests.e2e.conftest import StartHttp


def readme_block(heading: str, language: str = "sh") -> str:
    """The first fenced block of `language` under a README heading."""
    section = (REPO / "README.md").read_text().split(heading, 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def commands(block: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_curl_examples_work_against_a_running_server(start_http: StartHttp) -> None:
    server = start_http()
    found = commands(readme_block("## HTTP endpoint"))
    assert len(found) == 5
    outputs = []
    for command in found:
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
        command = command.replace("127.0.0.1:3001", f"127.0.0.1:{server.health_port}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    initialize, stateless, health, ready, metrics = outputs
    assert re.search(r"(?im)^mcp-session-id: [0-9a-f]{32}", initialize)
    assert '"serverInfo":{"name":"mcp-desk"' in initialize
    assert "vpn-troubleshooting.md" in stateless
    assert json.loads(health)["status"] in {"healthy", "degraded"}
    assert "mcp_desk_tool_calls_total" in metrics
    assert ready.strip()
