"""Drive the official conformance suite (`conformance server`) and read its per-scenario checks."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # no stubs pinned; only safe_load is used

from .harness import CONFORMANCE_JS, INTEROP_DIR, NODE_MODULES, run_node

SUITE_PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "conformance"
HANDSHAKE_ERA = "2025-11-25"
STATELESS_ERA = "2026-07-28"
ERAS = (HANDSHAKE_ERA, STATELESS_ERA)
PARALLEL_SCENARIOS = 4
_RUN_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def suite_version() -> str:
    """The installed suite's version, e.g. 0.2.0-alpha.12."""
    version: str = json.loads((SUITE_PACKAGE / "package.json").read_text())["version"]
    return version


def required_server_scenarios(revision: str) -> tuple[list[str], list[str]]:
    """(scored, not scored) server scenarios of a spec revision, from the suite's frozen requirement set."""
    data = yaml.safe_load((SUITE_PACKAGE / "requirements" / f"{revision}.yaml").read_text())
    extra = [entry["scenario"] for entry in data.get("not_scored", []) if entry.get("leg") == "server"]
    return list(data["server"]), extra


@dataclass
class ScenarioResult:
    """One scenario's checks: failures name the check and the suite's message."""

    scenario: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check failed (warnings and skips are not failures)."""
        return not self.failures


def read_results(out_dir: Path) -> dict[str, ScenarioResult]:
    """Parse `<out_dir>/server-<scenario>-<timestamp>/checks.json` as the suite writes them."""
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(out_dir.glob("server-*/checks.json")):
        match = _RUN_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        result = results.setdefault(match["scenario"], ScenarioResult(match["scenario"]))
        for check in json.loads(checks_file.read_text()):
            if check["status"] == "FAILURE":
                result.failures.append(f"{check['id']}: {check.get('errorMessage', '')}"[:400])
            elif check["status"] == "SUCCESS":
                result.passed += 1
    return results


def run_scenarios(url: str, out_dir: Path, *, era: str, scenarios: list[str]) -> dict[str, ScenarioResult]:
    """Run the named scenarios at one protocol era, a few at a time (each in its own session or requests).

    The suite takes one `--scenario` per run, and most of a run is Node starting up. A scenario that wrote
    no checks is a failure.
    """

    def run(scenario: str) -> None:
        args = [str(CONFORMANCE_JS), "server", "--url", url, "--scenario", scenario, "--spec-version", era]
        run_node([*args, "--force", "-o", str(out_dir)], cwd=INTEROP_DIR)

    with ThreadPoolExecutor(max_workers=PARALLEL_SCENARIOS) as pool:
        list(pool.map(run, scenarios))
    return _complete(read_results(out_dir), scenarios)


def run_requirements(url: str, out_dir: Path, *, revision: str) -> dict[str, ScenarioResult]:
    """Run exactly what a revision requires (plus its not-scored set), each at that revision's wire."""
    run_node(
        [str(CONFORMANCE_JS), "server", "--url", url, "--requirements", revision, "-o", str(out_dir)],
        cwd=INTEROP_DIR,
        timeout=110,
    )
    scored, extra = required_server_scenarios(revision)
    return _complete(read_results(out_dir), [*scored, *extra])


def _complete(results: dict[str, ScenarioResult], expected: list[str]) -> dict[str, ScenarioResult]:
    for scenario in expected:
        results.setdefault(scenario, ScenarioResult(scenario, failures=["suite wrote no checks for this scenario"]))
    return results
