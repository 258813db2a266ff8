"""The stored time format: UTC with microseconds and a trailing Z, sortable as text, and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from mcp_desk.domain.clock import format_ts, parse_ts, utc_now


def test_a_timestamp_is_utc_with_microseconds_and_a_z_whatever_the_zone_given() -> None:
    paris = datetime(2026, 1, 5, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert format_ts(paris) == "2026-01-05T09:00:00.000005Z"
    assert parse_ts(format_ts(paris)) == paris
    assert parse_ts("2026-01-05T09:00:00.000005Z").tzinfo == UTC


def test_timestamps_sort_as_text_in_time_order() -> None:
    start = datetime(2026, 1, 5, 9, 59, 59, 999999, tzinfo=UTC)
    moments = [start + timedelta(microseconds=n) for n in (0, 1, 10**6, 10**9)]
    texts = [format_ts(m) for m in moments]
    assert texts == sorted(texts)


def test_the_default_clock_is_aware_utc() -> None:
    assert utc_now().utcoffset() == timedelta(0)
