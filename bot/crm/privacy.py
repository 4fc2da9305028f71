"""A customer's right to their data: export everything we hold about them, or erase it.

A customer's rows are found through the schema: every row a foreign key leads to from one of
their rows (their conversations, orders, handoffs, the messages of those conversations, …), and
every audit entry about one of those rows — so a table added later is exported and erased too.

Erasure applies `bot.crm.erasure.ERASURE`, one decision per column: it keeps what the business
must keep in anonymous form (orders and refunds for the books, the counts, amounts, dates and
categories behind reports) and removes everything that identifies or quotes the person: name,
contact data, birthday, tags, channel identities, every text they or an agent wrote, every
payload. Conversation ids are renamed so the old chat id is gone; a later message from the same
chat starts afresh as a new customer. The erasure itself is audited by customer id and counts.
The Rasa tracker of each conversation is deleted from Rasa's tracker store too, in the same
command (`python -m bot.crm.privacy erase`); a failure there rolls the CRM erasure back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    inspect,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from bot.crm.db import engine_for, session_scope
from bot.crm.erasure import ERASURE, Delete, NoCustomerRows, PerRow, Rows, Set, Stamp, problems
from bot.crm.models import Base, Conversation, Customer, utcnow
from bot.crm.queries import record_audit

BATCH = 500  # ids per statement


class UnknownCustomer(LookupError):
    pass


class UndecidedErasure(RuntimeError):
    """The schema has a table or column without an erasure decision: erasing would leave it."""


def _in(column: ColumnElement[Any], ids: Sequence[int]) -> ColumnElement[bool]:
    # Ids are our own integers, rendered inline so that thousands stay under SQLite's bind limit.
    return column.in_(bindparam(None, list(ids), expanding=True, literal_execute=True))


def _ids(session: Session, table: Table, condition: ColumnElement[bool]) -> list[int]:
    return list(session.scalars(select(table.c.id).where(condition).order_by(table.c.id)))


def customer_rows(*, session: Session, customer_id: int) -> dict[str, list[int]]:
    """The ids of the customer's rows, per table (the customer table included)."""
    owned: dict[str, list[int]] = {"customer": [customer_id]}
    named: list[tuple[Table, Rows]] = []
    for table in Base.metadata.sorted_tables:  # a table comes after those its keys lead to
        declaration = ERASURE.get(table.name)  # undeclared: followed, and erasure refuses to run
        if table.name == "customer" or isinstance(declaration, NoCustomerRows):
            continue
        if isinstance(declaration, Rows) and declaration.about:
            named.append((table, declaration))  # after every table it may name
            continue
        leads = [
            _in(key.parent, owned[key.column.table.name])
            for key in table.foreign_keys
            if owned.get(key.column.table.name)
        ]
        if leads:
            owned[table.name] = _ids(session, table, or_(*leads))
    for table, declaration in named:
        kind, row_id = declaration.about or ("", "")
        about = [and_(table.c[kind] == name, _in(table.c[row_id], ids)) for name, ids in owned.items() if ids]
        owned[table.name] = _ids(session, table, or_(*about))
    return {name: ids for name, ids in owned.items() if ids}


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def export_customer(*, session: Session, customer_id: int) -> dict[str, Any]:
    """Everything the CRM holds about one customer, as JSON-ready data."""
    if session.get(Customer, customer_id) is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    export: dict[str, Any] = {"exported_at": utcnow().isoformat()}
    for name, ids in customer_rows(session=session, customer_id=customer_id).items():
        table = Base.metadata.tables[name]
        rows = [
            {k: _plain(v) for k, v in row._mapping.items()}
            for chunk in _batches(ids)
            for row in session.execute(select(table).where(_in(table.c.id, chunk)).order_by(table.c.id))
        ]
        export[name] = rows[0] if name == "customer" else rows
    return export


def erase_customer(*, session: Session, customer_id: int, actor: str) -> list[str]:
    """Erase the customer's personal data (see `bot.crm.erasure`); return their old sender ids."""
    if undecided := problems(Base.metadata):
        raise UndecidedErasure("; ".join(undecided))
    if session.get(Customer, customer_id) is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    session.flush()  # the statements below bypass the unit of work
    _zero_what_is_overwritten(session.connection())
    sender_ids = conversations_of(session=session, customer_id=customer_id)
    owned = customer_rows(session=session, customer_id=customer_id)
    for name, ids in owned.items():
        table, declaration = Base.metadata.tables[name], ERASURE[name]
        for chunk in _batches(ids):
            if isinstance(declaration, Delete):
                session.execute(delete(table).where(_in(table.c.id, chunk)))
            elif isinstance(declaration, Rows):
                _erase_rows(session, table, declaration, chunk)
    session.expire_all()
    record_audit(
        session=session,
        actor=actor,
        action="customer_erased",
        entity="customer",
        entity_id=customer_id,
        details={"conversations": len(sender_ids), "rows": sum(len(ids) for ids in owned.values())},
    )
    session.flush()
    return sender_ids


def _erase_rows(session: Session, table: Table, declaration: Rows, ids: Sequence[int]) -> None:
    """Apply each column's rule to these rows: fixed values in one statement, the rest row by row."""
    fixed = {
        name: _fixed(rule) for name, rule in declaration.columns.items() if isinstance(rule, (Set, Stamp))
    }
    if fixed:
        session.execute(update(table).where(_in(table.c.id, ids)).values(fixed))
    per_row = {name: rule for name, rule in declaration.columns.items() if isinstance(rule, PerRow)}
    if not per_row:
        return
    rows = session.execute(
        select(table.c.id, *(table.c[name] for name in per_row)).where(_in(table.c.id, ids))
    )
    values = [
        {
            "row_id": row.id,
            **{f"new_{name}": rule.erase(row._mapping[name], row.id) for name, rule in per_row.items()},
        }
        for row in rows
    ]
    if values:
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in per_row})
        )
        session.execute(statement, values)


def _fixed(rule: Set | Stamp) -> Any:
    if isinstance(rule, Stamp):
        return utcnow()
    if rule.value is None:
        return null()  # SQL NULL, also for JSON (where None would store the JSON `null`)
    return rule.value


def _batches(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def conversations_of(*, session: Session, customer_id: int) -> list[str]:
    """The customer's conversation (Rasa sender) ids."""
    if session.get(Customer, customer_id) is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    return list(
        session.scalars(select(Conversation.sender_id).where(Conversation.customer_id == customer_id))
    )


def _zero_what_is_overwritten(connection: Connection) -> None:
    # Without it some SQLite builds leave old text in the file's free space (Debian's zero it).
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA secure_delete=ON")


def _compact(engine: Engine) -> None:
    """Rebuild a SQLite file and empty its write-ahead log: copies of old rows live in both.

    Writers that ran without secure_delete leave earlier versions of rows in free space, beyond
    the reach of the erasure's own statements. PostgreSQL is not compacted: its dead row versions
    go when autovacuum reuses their space (see the README on backups).
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def forget(*, database_url: str, tracker_db: Path, customer_id: int, actor: str) -> tuple[list[str], int]:
    """Erase a customer in the CRM and Rasa's tracker store; return their old sender ids and events wiped.

    A failure in the tracker store rolls the CRM erasure back, so that it can simply be run again.
    """
    with session_scope(database_url) as session:
        sender_ids = erase_customer(session=session, customer_id=customer_id, actor=actor)
        events = wipe_trackers(tracker_db=tracker_db, sender_ids=sender_ids)
    _compact(engine_for(database_url))
    return sender_ids, events


def wipe_trackers(*, tracker_db: Path, sender_ids: list[str]) -> int:
    """Delete the conversations' events from Rasa's SQL tracker store; return how many were deleted.

    Rasa's own `PUT /conversations/{id}/tracker/events` cannot do this: its SQL tracker store only
    ever appends, so replacing the events with none leaves them all in place.
    """
    if not sender_ids or not tracker_db.exists():
        return 0
    engine = create_engine(f"sqlite:///{tracker_db}")
    try:
        with engine.begin() as connection:
            if not inspect(connection).has_table("events"):
                return 0
            _zero_what_is_overwritten(connection)
            deleted = connection.execute(
                text("DELETE FROM events WHERE sender_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": sender_ids},
            )
        _compact(engine)
        return int(deleted.rowcount or 0)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    from bot.bootstrap import bootstrap

    parser = argparse.ArgumentParser(prog="python -m bot.crm.privacy", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("export", "erase"))
    parser.add_argument("customer_id", type=int)
    parser.add_argument("--yes", action="store_true", help="erase without asking (it cannot be undone)")
    args = parser.parse_args(argv)
    settings = bootstrap(command=True)
    try:
        if args.command == "export":
            with session_scope(settings.database_url) as session:
                json.dump(
                    export_customer(session=session, customer_id=args.customer_id), sys.stdout, indent=2
                )
            print()
            return
        if not args.yes and input(f"Erase customer #{args.customer_id}? This cannot be undone [y/N] ") != "y":
            raise SystemExit("nothing erased")
        sender_ids, events = forget(
            database_url=settings.database_url,
            tracker_db=settings.rasa_tracker_db,
            customer_id=args.customer_id,
            actor="cli",
        )
    except UnknownCustomer as error:
        raise SystemExit(str(error)) from None
    print(f"customer #{args.customer_id}: erased ({len(sender_ids)} conversation(s), {events} Rasa events)")


if __name__ == "__main__":
    main()
