"""Percentiles and rates as the bench reports them."""

from __future__ import annotations

from bench.stats import latency_summary, percentile, ratio


def test_percentiles_interpolate_between_ranks() -> None:
    values = [0.4, 0.1, 0.3, 0.2, 1.0]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 0) == 0.1 and percentile(values, 100) == 1.0
    assert abs(percentile(values, 95) - 0.88) < 1e-9  # 0.4 + (1.0 - 0.4) * 0.8
    assert percentile([], 50) is None


def test_a_latency_summary_is_in_milliseconds_per_second_of_wall_time() -> None:
    summary = latency_summary([0.1, 0.2, 0.3, 0.4], seconds=2.0)
    assert summary == {
        "count": 4,
        "p50_ms": 250.0,
        "p95_ms": 385.0,
        "p99_ms": 397.0,
        "per_second": 2.0,
        "seconds": 2.0,
    }
    assert latency_summary([], seconds=0)["p50_ms"] is None


def test_a_ratio_needs_both_figures() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(3.0, 0) is None
