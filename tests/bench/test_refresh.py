"""The nightly refresh figures of `make bench`, on a small population: every customer refreshed
each night, in far fewer SQL statements than customers (batches, never a query per customer), and
the rows the table prints. Times are never asserted."""

from __future__ import annotations

from pathlib import Path

from bench.refresh import measure_refresh
from bench.report import refresh_rows

CUSTOMERS = 300


def test_the_nightly_refresh_reads_in_batches_whatever_the_population(tmp_path: Path) -> None:
    small = measure_refresh(f"sqlite:///{tmp_path / 'small.db'}", customers=CUSTOMERS)
    large = measure_refresh(f"sqlite:///{tmp_path / 'large.db'}", customers=3 * CUSTOMERS)

    for result, customers in ((small, CUSTOMERS), (large, 3 * CUSTOMERS)):
        assert result["made"]["customers"] == customers and result["orders"] > customers
        assert not result["stopped_by_budget"] and len(result["nights"]) == 2
        first, second = result["nights"]
        assert first["customers"] == second["customers"] == customers
        assert first["moved"] > 0 and result["webhook_events"] == first["moved"] + second["moved"]
        began = sum(first["drift"][f"drift_{action}"] for action in ("task", "checkin", "not_chased"))
        assert began > 0 and result["drift_episodes"] >= began
        for night in result["nights"]:
            assert night["statements"] == night["statements_knowledge"] + night["statements_drift"]
            assert 0 < night["statements"] < customers / 5
    # Three times the customers, drifting and moving: a few more statements (another chunk of 500
    # here and there), not three times as many.
    for night, bigger in zip(small["nights"], large["nights"], strict=True):
        assert bigger["statements"] <= night["statements"] + 20

    rows = refresh_rows({"database": "sqlite", **small})
    assert rows[0] == (
        "nightly refresh (sqlite)",
        "the CRM: customers / orders (generated in)",
        f"{CUSTOMERS} / {small['orders']:,} ({small['generation_seconds']:,.1f} s)",
    )
    assert len(rows) == 5 and all(row[0] == "nightly refresh (sqlite)" for row in rows)
    assert refresh_rows(None)[0][2] == "not measured (--refresh-customers 0)"


def test_a_refresh_past_its_budget_stops_and_says_so(tmp_path: Path) -> None:
    result = measure_refresh(f"sqlite:///{tmp_path / 'crm.db'}", customers=50, budget=0.0)

    assert result["stopped_by_budget"] and len(result["nights"]) == 1  # the second night never starts
    night = result["nights"][0]
    assert night["stopped_by_budget"] and (night["customers"], night["statements"]) == (0, 1)
    assert "stopped by the 0-s budget" in refresh_rows({"database": "sqlite", **result})[1][2]
