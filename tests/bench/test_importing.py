"""The backfill figures of `make bench`, on a small CSV: every order created once and stored once,
the re-run changes nothing, and the API's batches fail nothing."""

from __future__ import annotations

from pathlib import Path

from bench.importing import measure_api, measure_import
from bench.report import import_rows


def test_the_backfill_figures_count_every_order_once(tmp_path: Path) -> None:
    imported = measure_import(f"sqlite:///{tmp_path / 'import.db'}", tmp_path / "files", orders=60)
    api = measure_api(f"sqlite:///{tmp_path / 'api.db'}", records=40)

    assert (imported["imported"], imported["stored_orders"], imported["rejected"]) == (60, 60, 0)
    assert imported["rerun_records"] == {"unchanged": 60, "stale": 20}  # placed is older than shipped
    assert imported["orders_per_second"] > 0 and not imported["stopped_by_budget"]
    assert (api["sent"], api["failed"], api["stored_customers"], api["stored_orders"]) == (40, 0, 20, 20)
    rows = import_rows({"database": "sqlite", "import": imported, "api": api})
    assert rows[2] == (
        "backfill (sqlite)",
        "orders created / stored / rows rejected (nothing lost or doubled)",
        "60 / 60 / 0",
    )
