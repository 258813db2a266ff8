"""Metrics: the documented names and labels, pre-created label sets, bounded label values."""

from __future__ import annotations

import math

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mcp_desk.errors import AppError
from mcp_desk.metrics import OUTCOMES, Metrics

TOOLS = ("create_note", "get_note", "run_diagnostic")
DOCUMENTED_METRICS = {
    "mcp_server_operation_duration_seconds": "histogram",
    "mcp_desk_tool_calls": "counter",
    "mcp_desk_permission_denied": "counter",
    "mcp_desk_rate_limited": "counter",
    "mcp_desk_audit_events": "counter",
    "mcp_desk_security_alerts": "counter",
    "mcp_desk_sessions_active": "gauge",
    "mcp_desk_output_tokens": "counter",
    "mcp_desk_context_cost_usd": "counter",
    "mcp_desk_budget_used_ratio": "gauge",
    "mcp_desk_sandbox_runs": "counter",
    "mcp_desk_tickets": "gauge",
    "mcp_desk_sla_tickets": "gauge",
    "mcp_desk_build_info": "gauge",
    "mcp_server_session_duration_seconds": "histogram",
}


def make_metrics() -> Metrics:
    return Metrics(version="1.2.3", tools=TOOLS, transports=("stdio",), diagnostics=("disk_usage", "uptime"))


def samples(metrics: Metrics) -> list[Sample]:
    return [s for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    for sample in samples(metrics):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def test_every_design_metric_is_exposed_with_its_type_from_start() -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(make_metrics().render().decode())}

    for name, kind in DOCUMENTED_METRICS.items():
        assert families.get(name) == kind, name


def test_process_and_python_collectors_are_on_the_app_registry() -> None:
    names = {s.name for s in samples(make_metrics())}

    assert {"process_cpu_seconds_total", "python_info", "python_gc_collections_total"} <= names


def test_two_apps_have_independent_registries_and_never_touch_the_global_one() -> None:
    first, second = make_metrics(), make_metrics()
    first.record_call("get_note", "ok", 0.01, "stdio")

    assert value(first, "mcp_desk_tool_calls_total", tool="get_note", outcome="ok") == 1.0
    assert value(second, "mcp_desk_tool_calls_total", tool="get_note", outcome="ok") == 0.0
    assert REGISTRY.get_sample_value("mcp_desk_tool_calls_total", {"tool": "get_note", "outcome": "ok"}) is None


def test_every_tool_and_outcome_pair_exists_at_zero_before_any_call() -> None:
    metrics = make_metrics()

    for tool in TOOLS:
        for outcome in OUTCOMES:
            assert value(metrics, "mcp_desk_tool_calls_total", tool=tool, outcome=outcome) == 0.0
        assert value(metrics, "mcp_desk_permission_denied_total", tool=tool) == 0.0
        assert value(metrics, "mcp_desk_output_tokens_total", tool=tool) == 0.0


def test_other_bounded_label_sets_are_precreated() -> None:
    metrics = make_metrics()

    assert value(metrics, "mcp_desk_rate_limited_total", scope="requests") == 0.0
    assert value(metrics, "mcp_desk_audit_events_total", event_type="permission_denied") == 0.0
    assert value(metrics, "mcp_desk_security_alerts_total", kind="auth_failed") == 0.0
    assert value(metrics, "mcp_desk_sandbox_runs_total", command="uptime", outcome="timeout") == 0.0
    assert value(metrics, "mcp_desk_tickets", status="in_progress") == 0.0
    assert value(metrics, "mcp_desk_build_info", version="1.2.3") == 1.0
    histogram_count = "mcp_server_operation_duration_seconds_count"
    labels = {"mcp_method_name": "tools/call", "gen_ai_tool_name": "create_note", "network_transport": "pipe"}
    for era in ("2025-11-25", "2026-07-28"):
        assert value(metrics, histogram_count, error_type="", mcp_protocol_version=era, **labels) == 0.0
        session = {"network_transport": "pipe", "error_type": "", "mcp_protocol_version": era}
        assert value(metrics, "mcp_server_session_duration_seconds_count", **session) == 0.0


def test_a_recorded_call_counts_its_outcome_and_an_observed_one_lands_in_a_latency_bucket() -> None:
    metrics = make_metrics()
    metrics.record_call("create_note", "denied", 0.0004, "stdio", "permission_denied")
    metrics.observe_method(
        "tools/call", 0.0004, "stdio", "tool_error", tool="create_note", protocol_version="2025-06-18"
    )

    assert value(metrics, "mcp_desk_tool_calls_total", tool="create_note", outcome="denied") == 1.0
    labels = {
        "mcp_method_name": "tools/call",
        "gen_ai_tool_name": "create_note",
        "error_type": "tool_error",
        "network_transport": "pipe",
        "mcp_protocol_version": "2025-06-18",
    }
    assert value(metrics, "mcp_server_operation_duration_seconds_bucket", le="0.0005", **labels) == 1.0
    assert value(metrics, "mcp_server_operation_duration_seconds_count", **labels) == 1.0
    observed = [s for s in samples(metrics) if s.name == "mcp_server_operation_duration_seconds_count" and s.value]
    assert len(observed) == 1  # record_call counts the outcome only: one observation per call


def test_histogram_buckets_span_sub_millisecond_to_tens_of_seconds() -> None:
    bounds = {
        float(s.labels["le"])
        for s in samples(make_metrics())
        if s.name == "mcp_server_operation_duration_seconds_bucket"
    }

    assert min(bounds) < 0.001
    assert max(b for b in bounds if b != float("inf")) >= 30


def test_unknown_label_values_are_counted_as_other() -> None:
    metrics = make_metrics()
    metrics.record_call("user-supplied-name", "weird", 0.1, "carrier-pigeon", "ValueError: secret")
    metrics.permission_denied("note-1234")
    metrics.rate_limited("principal:alice")
    metrics.sandbox_run("rm -rf /", "ok")

    names = [s for s in samples(metrics) if s.name.startswith("mcp_")]
    rendered = " ".join(str(s.labels) for s in names)
    assert value(metrics, "mcp_desk_tool_calls_total", tool="other", outcome="other") == 1.0
    assert value(metrics, "mcp_desk_permission_denied_total", tool="other") == 1.0
    assert value(metrics, "mcp_desk_rate_limited_total", scope="other") == 1.0
    assert value(metrics, "mcp_desk_sandbox_runs_total", command="other", outcome="ok") == 1.0
    for leaked in ("user-supplied-name", "weird", "carrier-pigeon", "secret", "alice", "note-1234", "rm -rf"):
        assert leaked not in rendered


def test_non_tool_methods_are_observed_without_a_tool_label() -> None:
    metrics = make_metrics()
    metrics.observe_method("tools/list", 0.002, "stdio", tool="get_note", protocol_version="2026-07-28")
    metrics.observe_method("sampling/createMessage", 0.002, "stdio", "RuntimeError")

    common = {"gen_ai_tool_name": "", "network_transport": "pipe"}
    count = "mcp_server_operation_duration_seconds_count"
    assert value(
        metrics, count, mcp_method_name="tools/list", error_type="", mcp_protocol_version="2026-07-28", **common
    )
    assert value(metrics, count, mcp_method_name="other", error_type="RuntimeError", mcp_protocol_version="", **common)


def test_error_types_follow_the_conventions_and_anything_else_is_other() -> None:
    metrics = make_metrics()
    for error_type in ("tool_error", "-32602", "TimeoutError", "ValueError: secret", "x" * 200):
        metrics.observe_method("tools/call", 0.01, "stdio", error_type, tool="get_note", protocol_version="1999-01-01")

    found = {
        s.labels["error_type"]: s.value
        for s in samples(metrics)
        if s.name == "mcp_server_operation_duration_seconds_count" and s.value
    }
    assert found == {"tool_error": 1.0, "-32602": 1.0, "TimeoutError": 1.0, "other": 2.0}
    versions = {s.labels["mcp_protocol_version"] for s in samples(metrics) if s.name.endswith("_count") and s.value}
    assert versions == {"other"}


def test_a_session_duration_is_observed_by_transport_and_protocol_version() -> None:
    metrics = make_metrics()
    metrics.observe_session(42.0, "stdio", protocol_version="2025-06-18")

    labels = {"network_transport": "pipe", "mcp_protocol_version": "2025-06-18", "error_type": ""}
    assert value(metrics, "mcp_server_session_duration_seconds_bucket", le="60.0", **labels) == 1.0
    assert value(metrics, "mcp_server_session_duration_seconds_sum", **labels) == 42.0


def test_gauges_and_counters_fed_by_other_components() -> None:
    metrics = make_metrics()
    metrics.audit_event("tool_result")
    metrics.security_alert("path_blocked")
    metrics.set_sessions(3)
    metrics.output_tokens("get_note", 120)
    metrics.output_tokens("get_note", 0)
    metrics.context_cost(0.25)
    metrics.set_budget_ratio(0.5)
    metrics.sandbox_run("uptime", "ok")

    assert value(metrics, "mcp_desk_audit_events_total", event_type="tool_result") == 1.0
    assert value(metrics, "mcp_desk_security_alerts_total", kind="path_blocked") == 1.0
    assert value(metrics, "mcp_desk_sessions_active") == 3.0
    assert value(metrics, "mcp_desk_output_tokens_total", tool="get_note") == 120.0
    assert value(metrics, "mcp_desk_context_cost_usd_total") == 0.25
    assert value(metrics, "mcp_desk_budget_used_ratio") == 0.5
    assert value(metrics, "mcp_desk_sandbox_runs_total", command="uptime", outcome="ok") == 1.0


def test_ticket_counts_replace_the_previous_ones_and_missing_statuses_read_zero() -> None:
    metrics = make_metrics()
    metrics.set_tickets({"open": 4, "closed": 2})
    metrics.set_tickets({"open": 1, "archived": 7})

    assert value(metrics, "mcp_desk_tickets", status="open") == 1.0
    assert value(metrics, "mcp_desk_tickets", status="closed") == 0.0
    assert value(metrics, "mcp_desk_tickets", status="other") == 7.0


def test_sla_counts_exist_for_every_priority_and_open_state_and_replace_the_previous_ones() -> None:
    metrics = make_metrics()
    pairs = {(s.labels["priority"], s.labels["state"]) for s in samples(metrics) if s.name == "mcp_desk_sla_tickets"}
    assert pairs == {
        (priority, state)
        for priority in ("low", "normal", "high", "urgent")
        for state in ("on_track", "due_soon", "breached", "paused")
    }

    metrics.set_sla_tickets({("urgent", "breached"): 3, ("low", "on_track"): 5})
    metrics.set_sla_tickets({("urgent", "breached"): 1})

    assert value(metrics, "mcp_desk_sla_tickets", priority="urgent", state="breached") == 1.0
    assert value(metrics, "mcp_desk_sla_tickets", priority="low", state="on_track") == 0.0


def test_no_created_series_double_the_exposition() -> None:
    assert not [s for s in samples(make_metrics()) if s.name.endswith("_created")]


def test_health_checks_read_nan_until_they_run_then_1_ok_half_warn_0_fail() -> None:
    metrics = make_metrics()
    metrics.declare_health_checks(["storage", "sandbox", "budget"])
    assert math.isnan(value(metrics, "mcp_desk_health_check_status", check="storage") or 0.0)

    metrics.set_health({"storage": "ok", "sandbox": "warn", "budget": "fail", "made_up": "ok"})

    assert value(metrics, "mcp_desk_health_check_status", check="storage") == 1.0
    assert value(metrics, "mcp_desk_health_check_status", check="sandbox") == 0.5
    assert value(metrics, "mcp_desk_health_check_status", check="budget") == 0.0
    assert value(metrics, "mcp_desk_health_check_status", check="other") == 1.0


def test_alert_kinds_are_the_ones_the_alerter_is_called_with() -> None:
    metrics = make_metrics()
    kinds = ["auth_failed", "path_blocked", "permission_denied_burst", "budget_threshold", "budget_exhausted"]
    for kind in kinds:
        metrics.security_alert(kind)

    assert [value(metrics, "mcp_desk_security_alerts_total", kind=k) for k in kinds] == [1.0] * 5
    assert value(metrics, "mcp_desk_security_alerts_total", kind="other") is None


def test_every_error_class_code_is_a_precreated_error_type_label() -> None:
    """Error types come from the error classes, so a new AppError can never be counted as "other"."""
    classes: list[type[AppError]] = [AppError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    metrics = Metrics(version="t", tools=["get_note"])
    for cls in classes:
        metrics.observe_method("tools/call", 0.01, "stdio", cls.code, tool="get_note")

    rendered = metrics.render().decode()
    for cls in classes:
        assert f'error_type="{cls.code}"' in rendered, cls.__name__
    assert 'error_type="other"' not in rendered
