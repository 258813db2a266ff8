"""The official MCP conformance suite against mcp-desk, in both protocol eras.

Production tool set: the scenarios that need no fixtures run against `mcp-desk http` as shipped.
Fixture profile: the suite's named test tools, resources and prompts are registered through our
registry and guards (tests/support/conformance.py) and every scenario a revision requires runs.
A failing check fails the test; the pass counts are printed in pytest's terminal summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conformance_runner import (
    HANDSHAKE_ERA,
    STATELESS_ERA,
    ScenarioResult,
    required_server_scenarios,
    run_requirements,
    run_scenarios,
    suite_version,
)
from .harness import conformance_http, desk_http, require_node_tools

pytestmark = pytest.mark.slow

# Scenarios that need nothing but the product's own surface, per era.
PRODUCTION_SCENARIOS = {
    HANDSHAKE_ERA: [
        "server-initialize",
        "server-session-lifecycle",
        "ping",
        "tools-list",
        "resources-list",
        "prompts-list",
        "logging-set-level",
        "completion-complete",
        "resources-subscribe",
        "resources-unsubscribe",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    ],
    STATELESS_ERA: [
        "tools-list",
        "resources-list",
        "prompts-list",
        "completion-complete",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        "sep-2164-resource-not-found",
        "caching",
    ],
}


def _report(request: pytest.FixtureRequest, label: str, results: dict[str, ScenarioResult]) -> None:
    passed = sum(result.ok for result in results.values())
    checks = sum(result.passed for result in results.values())
    line = f"conformance {suite_version()} {label}: {passed}/{len(results)} scenarios passed ({checks} checks)"
    request.config.stash.setdefault(CONFORMANCE_SUMMARY, []).append(line)


def _failures(results: dict[str, ScenarioResult], scenarios: list[str]) -> dict[str, list[str]]:
    return {name: results[name].failures for name in scenarios if not results[name].ok}


CONFORMANCE_SUMMARY = pytest.StashKey[list[str]]()


@pytest.mark.parametrize("era", [HANDSHAKE_ERA, STATELESS_ERA])
def test_production_tool_set_passes_the_fixture_free_scenarios(
    era: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`mcp-desk http` as shipped: lists, ping, logging, completions, subscriptions, SSE, DNS rebinding."""
    require_node_tools()
    scenarios = PRODUCTION_SCENARIOS[era]
    with desk_http(tmp_path) as server:
        results = run_scenarios(server.url, tmp_path / "results", era=era, scenarios=scenarios)

    _report(request, f"production {era}", {name: results[name] for name in scenarios})
    assert _failures(results, scenarios) == {}


# The handshake-era sampling/elicitation scenarios use capabilities the SDK flags as deprecated in 2026-07-28.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("revision", [HANDSHAKE_ERA, STATELESS_ERA])
def test_fixture_profile_passes_every_scenario_the_revision_requires(
    revision: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The suite's fixtures through our transport, auth and guards; not-scored scenarios are reported only."""
    require_node_tools()
    scored, not_scored = required_server_scenarios(revision)
    with conformance_http(tmp_path) as server:
        results = run_requirements(server.url, tmp_path / "results", revision=revision)

    _report(request, f"fixtures {revision} required", {name: results[name] for name in scored})
    _report(request, f"fixtures {revision} not scored", {name: results[name] for name in not_scored})
    assert _failures(results, scored) == {}
