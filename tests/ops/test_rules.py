"""prometheus.yml and prometheus/ rules: promtool checks, unit tests for every alert, known metrics only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ops.deploy_support import (
    DOCUMENTED_METRICS,
    HEALTH_METRICS,
    PROMETHEUS_METRICS,
    REPO,
    ensure_prometheus,
    exported_family,
    load_yaml,
    metric_names,
    recording_rule_names,
    run,
)

RULES = REPO / "prometheus"
RULE_FILES = [RULES / "recording.yml", RULES / "alerts.yml"]
REQUIRED_ALERTS = {
    "McpDeskDown",
    "McpDeskHighErrorRatio",
    "McpDeskHighLatencyP95",
    "McpDeskPermissionDeniedBurst",
    "McpDeskAuthFailureBurst",
    "McpDeskRateLimitSaturation",
    "McpDeskBudgetThreshold",
    "McpDeskSandboxDegraded",
    "McpDeskStorageUnhealthy",
    "McpDeskSlaBreached",
}


def _rules(path_name: str) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES / path_name)["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules("alerts.yml")}


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from Debian's prometheus package."""
    return ensure_prometheus()[1]


def test_promtool_accepts_the_prometheus_config(promtool: str) -> None:
    result = run([promtool, "check", "config", str(REPO / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_promtool_lints_the_rules_clean(promtool: str) -> None:
    result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    tests = sorted(RULES.glob("*_test.yml"))
    assert tests
    result = run([promtool, "test", "rules", *map(str, tests)], cwd=RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_loads_exactly_the_rule_files_and_not_the_tests() -> None:
    config = load_yaml(REPO / "prometheus.yml")
    assert sorted(config["rule_files"]) == ["prometheus/alerts.yml", "prometheus/recording.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mcp-desk"]
    assert job["static_configs"] == [{"targets": ["mcp-desk:3001"]}]
    assert job["metrics_path"] == "/metrics"


def test_every_issue_alert_exists_with_severity_and_summary() -> None:
    alerts = _alerts()
    assert alerts.keys() >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name


def test_every_alert_has_a_firing_unit_test() -> None:
    fired: set[str] = set()
    for path in RULES.glob("*_test.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    fired.add(check["alertname"])
    assert set(_alerts()) - fired == set()


def test_rules_use_only_exported_metrics_and_recorded_series() -> None:
    allowed = DOCUMENTED_METRICS | HEALTH_METRICS | PROMETHEUS_METRICS
    recorded = recording_rule_names()
    for rule in _rules("recording.yml") + _rules("alerts.yml"):
        for name in metric_names(rule["expr"]):
            assert name in recorded or exported_family(name) in allowed, f"{name} in {rule['expr']}"


def test_recording_rules_follow_the_level_metric_operations_convention() -> None:
    for name in recording_rule_names():
        level, metric, operations = name.split(":")
        assert level == "mcp_desk"
        assert metric
        assert operations
