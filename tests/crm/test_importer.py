"""The bulk importer on SQLite and PostgreSQL: the API's rules for CSV and JSON-lines rows, rejects
with their line and reason, dry runs, idempotent re-runs, resuming, and the batch's fast path."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from bot.api.schemas import CustomerIn
from bot.crm import importer, ingest
from bot.crm.db import make_engine
from bot.crm.importer import FileRefused, Options, import_files
from bot.crm.migrate import upgrade
from bot.crm.models import AuditLog, Consent, Customer, Order, OrderStatus, Product, Refund

BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)


def T(minutes: float) -> str:  # noqa: N802 - reads as a time
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_scratch")
    made = make_engine(url)
    yield made
    made.dispose()


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def shop_files(tmp_path: Path) -> list[Path]:
    """A shop's export with one bad row per file, given on the command line out of order."""
    customers = write_csv(
        tmp_path / "customers.csv",
        [
            [
                "external_id",
                "occurred_at",
                "first_name",
                "email",
                "marketing_consent",
                "marketing_consent_source",
            ],
            ["c1", T(0), "Ulla", "ulla@example.com", "yes", "checkout"],
            ["c2", T(0), "Bror", "not-an-address", "", ""],  # line 3: refused
            ["c3", T(0), "Cleo", "", "", ""],
        ],
    )
    products = write_csv(
        tmp_path / "products.csv",
        [
            ["external_id", "occurred_at", "name", "price"],
            ["p1", T(0), "Grinder", "40.00"],
            ["p2", T(0), "Mug", "8"],
        ],
    )
    orders = write_csv(
        tmp_path / "orders.csv",
        [
            [
                "external_id",
                "occurred_at",
                "status",
                "customer_external_id",
                "number",
                "carrier",
                "line_product_external_id",
                "line_quantity",
                "line_unit_price",
            ],
            ["o1", T(5), "placed", "c1", "#10234", "", "p1", "2", "40.00"],  # one order, two lines
            ["o1", T(5), "placed", "c1", "#10234", "", "p2", "1", "8.00"],
            ["o1", T(60), "shipped", "", "", "DHL", "", "", ""],  # its status change
            ["o2", T(5), "placed", "c2", "#10235", "", "p1", "1", "40.00"],  # line 5: c2 was refused
            ["o3", T(5), "placed", "c3", "#10234", "", "p1", "1", "40.00"],  # line 6: number taken
            ["o4", T(5), "placed", "c3", "A-5521", "", "p9", "1", "40.00"],  # line 7: unknown product
            ["o5", T(5), "placed", "c3", "A-5522", "", "p2", "three", "8.00"],  # line 8: not a number
        ],
    )
    refunds = tmp_path / "refunds.jsonl"
    refunds.write_text(
        json.dumps(
            {
                "external_id": "r1",
                "occurred_at": T(90),
                "status": "requested",
                "order_external_id": "o1",
                "amount": "8.00",
            }
        )
        + "\n"
        + "{not json\n"
    )
    return [refunds, orders, products, customers]


def rejected(tally: importer.Tally) -> set[tuple[str, int, str, str]]:
    return {(r.file, r.line, r.field, r.reason) for r in tally.rejected}


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_files_are_imported_in_order_with_each_bad_row_set_aside(
    engine: Engine, shop_files: list[Path]
) -> None:
    tally = import_files(engine, shop_files, Options(batch_size=2, progress=False))

    assert rejected(tally) == {
        ("customers.csv", 3, "email", "is not an email address"),
        ("orders.csv", 5, "customer_external_id", "names no customer known here: send the customer first"),
        ("orders.csv", 6, "number", "is the number of another order"),
        ("orders.csv", 7, "line_product_external_id", "names no product known here: send the product first"),
        ("orders.csv", 8, "line_quantity", "Input should be a valid integer"),
        ("refunds.jsonl", 2, "", "is not JSON: Expecting property name enclosed in double quotes"),
    }
    assert tally.counts["orders.csv"] == {"created": 1, "updated": 1, "rejected": 4}
    with Session(engine) as session:
        order = session.scalar(select(Order).where(Order.external_id == "o1"))
        assert order is not None
        assert (order.number, order.status, order.carrier, str(order.total)) == (
            "#10234",
            OrderStatus.SHIPPED,
            "DHL",
            "88.00",
        )
        assert sorted((line.product.external_id, line.quantity) for line in order.lines) == [
            ("p1", 2),
            ("p2", 1),
        ]
        ulla = session.scalar(select(Customer).where(Customer.external_id == "c1"))
        assert ulla is not None and ulla.email_verified_at is None
        assert session.scalar(select(Consent.source).where(Consent.customer_id == ulla.id)) == "shop:checkout"
        assert session.scalar(select(Refund.amount).where(Refund.external_id == "r1")) == 8
        actors = set(session.scalars(select(AuditLog.actor).where(AuditLog.action.like("api_%"))))
    assert actors == {
        "import:customers.csv",
        "import:products.csv",
        "import:orders.csv",
        "import:refunds.jsonl",
    }
    assert count(engine, Customer) == 2 and count(engine, Order) == 1


def test_the_same_files_again_change_nothing(engine: Engine, shop_files: list[Path]) -> None:
    import_files(engine, shop_files, Options(progress=False))
    audits = count(engine, AuditLog)

    again = import_files(engine, shop_files, Options(progress=False))

    assert again.counts["customers.csv"] == {"unchanged": 2, "rejected": 1}
    assert again.counts["orders.csv"] == {
        "stale": 1,
        "unchanged": 1,
        "rejected": 4,
    }  # placed is older than shipped
    assert count(engine, AuditLog) == audits
    assert (count(engine, Customer), count(engine, Order), count(engine, Refund)) == (2, 1, 1)


def test_a_dry_run_reports_what_a_run_would_do_and_writes_nothing(
    engine: Engine, shop_files: list[Path]
) -> None:
    dry = import_files(engine, shop_files, Options(batch_size=2, dry_run=True, progress=False))

    assert dry.counts["orders.csv"] == {
        "created": 1,
        "updated": 1,
        "rejected": 4,
    }  # it saw the customers it made
    assert dry.counts["refunds.jsonl"] == {"created": 1, "rejected": 1}
    assert (
        count(engine, Customer),
        count(engine, Product),
        count(engine, Order),
        count(engine, AuditLog),
    ) == (0, 0, 0, 0)
    real = import_files(engine, shop_files, Options(batch_size=2, progress=False))
    assert real.counts == dry.counts and rejected(real) == rejected(dry)


def test_an_interrupted_import_resumes_after_its_last_committed_chunk(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [["external_id", "occurred_at", "first_name"]] + [[f"c{n}", T(n), f"N{n}"] for n in range(7)]
    customers = write_csv(tmp_path / "customers.csv", rows)
    options = Options(batch_size=3, state_dir=tmp_path / "state", progress=False)
    real_write = importer.write_chunk
    calls = []

    def crash_on_the_second_chunk(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, mid-import
        real_write(*args)

    monkeypatch.setattr(importer, "write_chunk", crash_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        import_files(engine, [customers], options)
    assert count(engine, Customer) == 3
    monkeypatch.setattr(importer, "write_chunk", real_write)

    resumed = import_files(engine, [customers], options)

    assert resumed.counts["customers.csv"] == {"created": 4}  # the first chunk was not read again
    assert count(engine, Customer) == 7
    assert not list((tmp_path / "state").glob("*.json"))  # finished: a next run starts from the top


def test_a_file_with_a_column_nobody_reads_is_refused_before_anything_is_written(
    engine: Engine, tmp_path: Path
) -> None:
    good = write_csv(tmp_path / "customers.csv", [["external_id", "occurred_at"], ["c1", T(0)]])
    bad = write_csv(
        tmp_path / "orders.csv",
        [["external_id", "occurred_at", "status", "colour"], ["o1", T(0), "placed", "red"]],
    )

    with pytest.raises(FileRefused, match="'colour' is not a column of orders"):
        import_files(engine, [good, bad], Options(progress=False))

    assert count(engine, Customer) == 0


def test_json_lines_of_batch_items_are_read_in_their_own_order(engine: Engine, tmp_path: Path) -> None:
    items = [
        {"type": "customer", "data": {"external_id": "c1", "occurred_at": T(0)}},
        {"type": "product", "data": {"external_id": "p1", "occurred_at": T(0), "name": "Mug", "price": "8"}},
        {
            "type": "order",
            "data": {
                "external_id": "o1",
                "occurred_at": T(1),
                "status": "placed",
                "customer_external_id": "c1",
                "number": "1001",
                "lines": [{"product_external_id": "p1", "unit_price": "8"}],
            },
        },
        {"type": "parcel", "data": {}},
    ]
    path = tmp_path / "backfill.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in items) + "\n")

    tally = import_files(engine, [path], Options(progress=False))

    assert tally.counts["backfill.jsonl"] == {"created": 3, "rejected": 1}
    assert [(r.line, r.field) for r in tally.rejected] == [(4, "type")]


def test_the_command_writes_the_rejects_file_and_fails(
    engine: Engine, shop_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejects = tmp_path / "out" / "rejected.csv"
    url = engine.url.render_as_string(hide_password=False)

    code = importer.main(
        [*map(str, shop_files), "--database-url", url, "--rejects", str(rejects), "--no-progress"]
    )

    assert code == 1
    with rejects.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert {(row["file"], row["line"], row["external_id"]) for row in lines} >= {
        ("customers.csv", "3", "c2"),
        ("orders.csv", "6", "o3"),
    }
    assert "orders.csv: created 1, rejected 4, updated 1" in capsys.readouterr().out


def test_a_batch_whose_flush_meets_a_concurrent_writer_writes_record_by_record(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [CustomerIn(external_id=f"c{n}", occurred_at=BASE, first_name="New") for n in range(3)]
    prefetch = ingest.Batch.prefetch

    def then_another_writer_adds_c1(batch: ingest.Batch, items: Any) -> None:
        prefetch(batch, items)  # c1 looked absent; the other writer's row reaches the table now
        batch.session.execute(insert(Customer).values(external_id="c1", first_name="Theirs", tags=[]))

    monkeypatch.setattr(ingest.Batch, "prefetch", then_another_writer_adds_c1)
    with Session(engine) as session:
        done = ingest.upsert_many(session=session, items=[("customer", r) for r in records], actor="import:t")
        session.commit()

    assert [d.outcome.value for d in done] == ["created", "updated", "created"]
    with Session(engine) as session:
        names = dict(session.execute(select(Customer.external_id, Customer.first_name)).tuples().all())
    assert names == {"c0": "New", "c1": "New", "c2": "New"}


def test_a_customers_address_is_read_from_its_columns_and_checked_as_the_api_does(
    engine: Engine, tmp_path: Path
) -> None:
    header = [
        "external_id",
        "occurred_at",
        "address_line1",
        "address_postal_code",
        "address_city",
        "address_country",
    ]
    customers = write_csv(
        tmp_path / "customers.csv",
        [
            header,
            ["c1", T(0), "Hauptstraße 5", "10115", "Berlin", "DE"],
            ["c2", T(0), "Hauptstraße 5", "1", "Berlin", "DE"],
        ],
    )

    tally = import_files(engine, [customers], Options(progress=False))

    assert tally.counts["customers.csv"] == {"created": 1, "rejected": 1}
    assert [(r.line, r.field) for r in tally.rejected] == [(3, "address")]
    with Session(engine) as session:
        record = ingest.record_of(session=session, resource="customer", external_id="c1")
    assert record is not None and record["address"]["city"] == "Berlin"
