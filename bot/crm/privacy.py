"""A customer's right to their data: export everything we hold about them, or erase it.

Export walks every CRM table that belongs to a customer (a `customer_id` column, or a
`conversation_id` of one of their conversations) — so a table added later is exported too.

Erasure keeps what the business must keep (orders and refunds for the books, the counts behind
reports) but removes everything that identifies or quotes the person: name, contact data,
birthday, tags, channel identities (their Telegram chat or web visitor id), every free text
(messages, complaint descriptions, comments, notes) and every JSON payload. Conversation ids are
renamed so the old chat id is gone; a later message from the same chat starts afresh as a new
customer. The Rasa tracker of each conversation is deleted from Rasa's tracker store too, in the
same command (`python -m bot.crm.privacy erase`); a failure there rolls the CRM erasure back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, create_engine, inspect, select, text, update
from sqlalchemy.orm import Session

from bot.crm.models import Base, ChannelIdentity, Conversation, Customer, utcnow
from bot.crm.queries import record_audit

ERASED_TEXT = "[erased]"
CUSTOMER_FIELDS = ("first_name", "last_name", "email", "phone", "birthday")


class UnknownCustomer(LookupError):
    pass


def _owned_tables(session: Session, customer_id: int) -> Iterator[tuple[Table, Any]]:
    """Each table holding the customer's rows, with the condition that selects them."""
    conversation_ids = list(
        session.scalars(select(Conversation.id).where(Conversation.customer_id == customer_id))
    )
    for table in Base.metadata.sorted_tables:
        if table.name == "customer":
            continue
        if "customer_id" in table.c:
            yield table, table.c.customer_id == customer_id
        elif "conversation_id" in table.c and conversation_ids:
            yield table, table.c.conversation_id.in_(conversation_ids)


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
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    customer_table = Base.metadata.tables["customer"]
    row = session.execute(select(customer_table).where(customer_table.c.id == customer_id)).one()
    export: dict[str, Any] = {
        "exported_at": utcnow().isoformat(),
        "customer": {k: _plain(v) for k, v in row._mapping.items()},
    }
    for table, condition in _owned_tables(session, customer_id):
        rows = session.execute(select(table).where(condition).order_by(*table.primary_key.columns)).all()
        if rows:
            export[table.name] = [{k: _plain(v) for k, v in r._mapping.items()} for r in rows]
    return export


def erase_customer(*, session: Session, customer_id: int, actor: str) -> list[str]:
    """Erase the customer's personal data (see the module docstring); return their old sender ids."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    conversations = list(session.scalars(select(Conversation).where(Conversation.customer_id == customer_id)))
    sender_ids = [c.sender_id for c in conversations]
    for table, condition in _owned_tables(session, customer_id):
        values = _blanks(table)
        if values:
            session.execute(update(table).where(condition).values(**values))
    for conversation in conversations:
        conversation.sender_id = f"erased:{conversation.id}"
    session.execute(ChannelIdentity.__table__.delete().where(ChannelIdentity.customer_id == customer_id))
    for field in CUSTOMER_FIELDS:
        setattr(customer, field, None)
    customer.tags, customer.reachable, customer.erased_at = [], False, utcnow()
    record_audit(
        session=session,
        actor=actor,
        action="customer_erased",
        entity="customer",
        entity_id=customer_id,
        details={"conversations": len(conversations)},
    )
    session.flush()
    return sender_ids


def conversations_of(*, session: Session, customer_id: int) -> list[str]:
    """The customer's conversation (Rasa sender) ids."""
    if session.get(Customer, customer_id) is None:
        raise UnknownCustomer(f"no customer #{customer_id}")
    return list(
        session.scalars(select(Conversation.sender_id).where(Conversation.customer_id == customer_id))
    )


def _blanks(table: Table) -> dict[str, Any]:
    """Every free-text and JSON column of `table`, emptied."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if isinstance(column.type, Text):
            values[column.name] = None if column.nullable else ERASED_TEXT
        elif isinstance(column.type, JSON):
            values[column.name] = None if column.nullable else {}
    return values


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
            deleted = connection.execute(
                text("DELETE FROM events WHERE sender_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": sender_ids},
            )
            return int(deleted.rowcount or 0)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    from bot.crm.db import session_scope
    from bot.ops.envfile import load_env_file
    from bot.settings import PROJECT_ROOT, Settings

    parser = argparse.ArgumentParser(prog="python -m bot.crm.privacy", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("export", "erase"))
    parser.add_argument("customer_id", type=int)
    parser.add_argument("--yes", action="store_true", help="erase without asking (it cannot be undone)")
    args = parser.parse_args(argv)
    load_env_file(PROJECT_ROOT / ".env")
    settings = Settings.from_env()
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
        with session_scope(settings.database_url) as session:  # a failure below rolls this back
            sender_ids = erase_customer(session=session, customer_id=args.customer_id, actor="cli")
            events = wipe_trackers(tracker_db=settings.rasa_tracker_db, sender_ids=sender_ids)
    except UnknownCustomer as error:
        raise SystemExit(str(error)) from None
    print(f"customer #{args.customer_id}: erased ({len(sender_ids)} conversation(s), {events} Rasa events)")


if __name__ == "__main__":
    main()
