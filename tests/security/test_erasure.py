"""Erasure leaves none of the customer's words: a marker planted in every column comes out nowhere.

The customer's data is planted as one marker string (their name, phone and email) into every
free-text column — every String, Text and JSON column that is not an enum, a key or a foreign
key — of a row in every table a customer's data reaches. After the erasure, every column of
every row of every table in the database, cast to text, is searched for it. A second customer
gets a marker of their own that must survive everywhere it was planted, so the scan is known to
see what it searches.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from bot.crm.db import engine_for
from bot.crm.erasure import ERASURE, KEEP, Link, NoCustomerRows, Rows, problems
from bot.crm.migrate import upgrade
from bot.crm.models import (
    HANDOFF_LIVE,
    Agent,
    AgentNote,
    AuditLog,
    Author,
    Base,
    CaseAlert,
    CaseEvent,
    CaseEventKind,
    Channel,
    Consent,
    ConsentPurpose,
    Conversation,
    Delivery,
    DeliveryStatus,
    Direction,
    EmailVerification,
    FeedbackEvent,
    FeedbackEventKind,
    FeedbackItem,
    FeedbackSource,
    FeedbackState,
    Handoff,
    HandoffStatus,
    InboundStatus,
    InteractionEvent,
    LeaveReason,
    MailPurpose,
    Message,
    Notice,
    OrderLine,
    OutboundMail,
    OutreachKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from bot.crm.models.enums import Role, Segment
from bot.crm.models.knowledge import DriftEpisode, SegmentChange
from bot.crm.models.review import NluReview
from bot.crm.models.webhook import WebhookDelivery, WebhookSubscription
from bot.crm.privacy import UndecidedErasure, customer_rows, erase_customer, export_customer, forget
from tests.factories import NOW, make_complaint, make_customer, make_order, make_refund

ERASED = "Ulla Qvist +46705550123 ulla.qvist@erase.example"
KEPT = "Bror Ekdahl +46705559876 bror.ekdahl@keep.example"
# The shortest free-text column holds 8 characters: every planted value starts with the name.
NEEDLES = ("Ulla Qvi", "Qvist", "5550123", "ulla.qvist@")

CUSTOMER_TABLES = {name for name, declared in ERASURE.items() if not isinstance(declared, NoCustomerRows)}
# audit_log.entity names the table a row is about: like a foreign key it is how the row is found,
# so a marker there would make the row about nothing rather than test its erasure.
LINKS = {("audit_log", "entity")}


def free_text(column: Any) -> bool:
    """Whether a column can hold anything a person wrote: text or JSON, not an enum, key or link."""
    if column.primary_key or column.foreign_keys or (column.table.name, column.name) in LINKS:
        return False
    return isinstance(column.type, (String, JSON)) and not isinstance(column.type, Enum)


def planted(marker: str, column: Any, current: Any) -> Any:
    """The marker in the column's own shape (cut to its length; a JSON value with it as a key too)."""
    if isinstance(column.type, JSON):
        inner = {"note": marker, marker: 1, "nested": {"list": [marker, 2]}, "count": 3}
        return [marker, inner] if isinstance(current, list) else inner
    length = getattr(column.type, "length", None)
    return marker[:length] if length else marker


def a_customer_everywhere(session: Session, key: str) -> dict[str, list[int]]:
    """One customer with a row in every table a customer's data reaches; the ids, per table."""
    customer = make_customer(session, web_id=f"visitor-{key}", tags=["loyal"])
    conversation = Conversation(sender_id=f"web:visitor-{key}", customer_id=customer.id, channel=Channel.WEB)
    product = Product(sku=f"SKU-{key}", name="Mug", category="kitchen", price=Decimal("12.00"))
    session.add_all([conversation, product])
    session.flush()
    order = make_order(session, customer, carrier="DHL", tracking_code="00340434161234567890")
    refund = make_refund(session, order)
    complaint = make_complaint(session, customer, conversation_id=conversation.id, order_id=order.id)
    subscription = Subscription(
        customer_id=customer.id,
        product_id=product.id,
        status=SubscriptionStatus.ACTIVE,
        monthly_price=Decimal("9.00"),
        started_at=NOW - timedelta(days=90),
    )
    handoff = Handoff(
        conversation_id=conversation.id,
        customer_id=customer.id,
        reason="customer_request",
        priority=3,
        status=HandoffStatus.CLOSED,
        mode=HANDOFF_LIVE,
    )
    session.add_all([subscription, handoff])
    session.flush()
    rows: list[Base] = [
        Message(
            conversation_id=conversation.id,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            delivery_status=InboundStatus.PROCESSED,
        ),
        InteractionEvent(
            customer_id=customer.id,
            conversation_id=conversation.id,
            kind="csat",
            intent="rate",
            data={"survey_id": 7, "recovery_case": None, "cues": {"irritable": 2}, "order": "T-000001"},
        ),
        OrderLine(order_id=order.id, product_id=product.id, quantity=1, unit_price=Decimal("12.00")),
        RetentionAttempt(
            customer_id=customer.id,
            conversation_id=conversation.id,
            subscription_id=subscription.id,
            reason=LeaveReason.PRICE,
            outcome=RetentionOutcome.DECLINED,
        ),
        Survey(customer_id=customer.id, conversation_id=conversation.id, handoff_id=handoff.id, score=2),
        Consent(customer_id=customer.id, purpose=ConsentPurpose.MARKETING, granted=True, source="web:chat"),
        Delivery(
            idempotency_key=f"win_back:customer:{customer.id}:2026-06-15",
            kind=OutreachKind.WIN_BACK,
            customer_id=customer.id,
            complaint_id=complaint.id,
            status=DeliveryStatus.SKIPPED,
            skip_reason="quiet_hours",
        ),
        AgentNote(customer_id=customer.id, handoff_id=handoff.id, text="called back"),
        EmailVerification(
            customer_id=customer.id,
            address=f"{key}.new@example.com",
            nonce="n" * 32,
            token_hash=f"{key:<64}"[:64],
            expires_at=NOW + timedelta(days=1),
        ),
        OutboundMail(
            idempotency_key=f"refund_confirmation:{key}",
            customer_id=customer.id,
            purpose=MailPurpose.REFUND_CONFIRMATION,
            to_address=f"{key}@example.com",
            subject="Your refund",
            body="Dear customer, your refund is on its way.",
        ),
        CaseEvent(  # the customer's answer to a question on their case
            complaint_id=complaint.id,
            kind=CaseEventKind.ANSWER,
            actor="customer",
            from_value="waiting_on_customer",
            to_value="in_progress",
            text="my new address is 1 Main St",
        ),
    ]
    identity = customer.identities[0]
    for entity, entity_id in (
        ("customer", customer.id),
        ("channel_identity", identity.id),
        ("handoff", handoff.id),
    ):
        details = {"conversation_id": conversation.id, "source": "web"}
        rows.append(
            AuditLog(actor="agent:1", action="noted", entity=entity, entity_id=entity_id, details=details)
        )
    session.add_all(rows)
    session.flush()
    review = NluReview(  # the NLU review's reading of the customer's message
        message_id=rows[0].id,
        reasons="fallback",
        intent="complain",
        ranking=[{"intent": "complain", "confidence": 0.3}],
        votes={"diet": {"intent": "complain", "confidence": 0.5}},
        chosen_intent="complain",
        export_file="review-2026-06-15-1.yml",
    )
    session.add(review)
    session.flush()
    rows.append(review)
    item = FeedbackItem(  # their feedback on the Feedback page, and what we told them
        customer_id=customer.id,
        conversation_id=conversation.id,
        source=FeedbackSource.FEEDBACK,
        text="the courier was rude",
        product="Mug",
        competitor="BrewBox",
        state=FeedbackState.DONE,
    )
    session.add(item)
    session.flush()
    told = FeedbackEvent(item_id=item.id, kind=FeedbackEventKind.TOLD, to_value="done", text="new couriers")
    session.add(told)
    session.flush()
    rows += [item, told]
    # The SLA clock on their case, and the console notice it left for the team.
    alert = CaseAlert(key=f"sla:complaint:{complaint.id}:round:0:at_risk", complaint_id=complaint.id, round=0,
                      state="at_risk")  # fmt: skip
    agent = Agent(username=f"{key}-agent", display_name="Agent", password_hash="x", role=Role.AGENT)
    session.add_all([alert, agent])
    session.flush()
    notice = Notice(agent_id=agent.id, complaint_id=complaint.id, alert_id=alert.id, text="Case is at risk")
    session.add(notice)
    session.flush()
    rows += [alert, notice]
    # An event about them queued for the shop's systems (outbound webhooks).
    hook = WebhookSubscription(url="https://shop.example/hooks", events=["complaint.opened"], secret="s" * 32)
    session.add(hook)
    session.flush()
    delivery = WebhookDelivery(
        subscription_id=hook.id,
        customer_id=customer.id,
        event="complaint.opened",
        event_id=f"evt-{key}",
        payload={"customer_id": customer.id, "complaint_id": complaint.id},
    )
    session.add(delivery)
    session.flush()
    rows.append(delivery)
    # Their segment's history (segments that follow the customer).
    move = SegmentChange(customer_id=customer.id, to_segment=Segment.MVC, rule="top_value", trigger="nightly")
    episode = DriftEpisode(
        key=f"drift:customer:{customer.id}:since:2026-11-01",
        customer_id=customer.id,
        segment=Segment.MVC,
        reason="lapsed",
        reasons=[{"factor": "overdue", "text": "no order for 74 days, usually every 21"}],
        last_active_at=NOW - timedelta(days=74),
        action="task",
        task_note="called, left a message",
    )
    session.add_all([move, episode])
    session.flush()
    rows.extend([move, episode])
    owned: dict[str, list[int]] = {}
    for row in [customer, identity, conversation, order, refund, complaint, subscription, handoff, *rows]:
        owned.setdefault(row.__table__.name, []).append(row.id)  # type: ignore[attr-defined]
    return owned


def plant(session: Session, marker: str, owned: dict[str, list[int]]) -> None:
    """Write the marker into every free-text column of every row listed."""
    for name, ids in owned.items():
        table = Base.metadata.tables[name]
        columns = [c for c in table.columns if free_text(c)]
        for row in session.execute(select(table).where(table.c.id.in_(ids))).mappings():
            values = {c.name: planted(marker, c, row[c.name]) for c in columns}
            if values:
                session.execute(update(table).where(table.c.id == row["id"]).values(**values))
    session.flush()


def every_cell(session: Session) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null cell of every table in the database."""
    connection = session.connection()
    cells = []
    for name in inspect(connection).get_table_names():
        table = Table(name, MetaData(), autoload_with=connection)
        columns = list(table.columns)
        for row in session.execute(select(*(cast(c, Text) for c in columns))):
            cells += [(name, c.name, v) for c, v in zip(columns, row, strict=True) if v is not None]
    return cells


def planted_cells(owned: dict[str, list[int]]) -> int:
    """How many free-text cells were planted in these rows."""
    return sum(
        len(ids) * sum(1 for c in Base.metadata.tables[name].columns if free_text(c))
        for name, ids in owned.items()
    )


def a_planted_customer(session: Session, marker: str, key: str) -> dict[str, list[int]]:
    owned = a_customer_everywhere(session, key)
    plant(session, marker, owned)
    return owned


def test_every_column_of_every_table_has_an_erasure_decision() -> None:
    assert problems(Base.metadata) == []
    links = {
        (name, column)
        for name, declared in ERASURE.items()
        if isinstance(declared, Rows)
        for column, rule in declared.columns.items()
        if isinstance(rule, Link)
    }
    assert links == LINKS  # a Link is not planted below, so each one is an exception made here


def test_an_undecided_column_or_table_is_reported() -> None:
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    metadata.tables["refund"].append_column(Column("note", Text))
    Table(
        "customer_photo",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("customer_id", ForeignKey("customer.id")),
    )
    metadata.tables["canned_reply"].append_column(Column("customer_id", ForeignKey("customer.id")))
    refund = ERASURE["refund"]
    assert isinstance(refund, Rows)
    declarations = {**ERASURE, "refund": Rows({**refund.columns, "reason": KEEP})}
    assert problems(metadata, declarations) == [
        "customer_photo: no erasure decision for this table",
        "canned_reply.customer_id: leads to customers' rows, so the table has some",
        "refund.reason: free text or JSON cannot be kept as it is: use Code, Scrub, Set or Rename",
        "refund.note: no erasure decision for this column",
    ]


def test_erasure_refuses_to_run_with_an_undecided_column(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    owned = a_planted_customer(session, ERASED, "ulla")
    refund = ERASURE["refund"]
    assert isinstance(refund, Rows)
    monkeypatch.delitem(refund.columns, "reason")  # type: ignore[arg-type]
    with pytest.raises(UndecidedErasure, match="refund.reason: no erasure decision"):
        erase_customer(session=session, customer_id=owned["customer"][0], actor="cli")
    session.rollback()


def test_a_row_is_planted_in_every_table_a_customer_reaches(session: Session) -> None:
    owned = a_customer_everywhere(session, "ulla")
    a_customer_everywhere(session, "bror")
    assert set(owned) == CUSTOMER_TABLES  # a new customer table needs a row here
    assert customer_rows(session=session, customer_id=owned["customer"][0]) == owned  # and only these
    session.rollback()


def test_no_planted_marker_survives_erasure_and_others_keep_theirs(session: Session) -> None:
    owned = a_planted_customer(session, ERASED, "ulla")
    bystander = a_planted_customer(session, KEPT, "bror")
    customer_id = owned["customer"][0]
    before = json.dumps(export_customer(session=session, customer_id=customer_id))
    assert all(needle in before for needle in NEEDLES)  # the export holds what we plant

    erase_customer(session=session, customer_id=customer_id, actor="agent:1")
    session.flush()
    session.expire_all()

    cells = every_cell(session)
    survivors = sorted(
        {(table, column) for table, column, value in cells if any(n in value for n in NEEDLES)}
    )
    assert survivors == [], "\n".join(f"{t}.{c}" for t, c in survivors)
    assert sum(1 for *_, value in cells if KEPT[:8] in value) == planted_cells(bystander)
    after = export_customer(session=session, customer_id=customer_id)
    assert not any(needle in json.dumps(after) for needle in NEEDLES)
    erasure = [entry for entry in after["audit_log"] if entry["action"] == "customer_erased"]
    assert [(e["actor"], e["entity_id"], e["details"]["conversations"]) for e in erasure] == [
        ("agent:1", customer_id, 1)
    ]
    session.rollback()


def test_erasure_keeps_what_the_books_and_reports_count(session: Session) -> None:
    owned = a_customer_everywhere(session, "ulla")
    customer_id = owned["customer"][0]
    erase_customer(session=session, customer_id=customer_id, actor="cli")
    session.flush()
    after = export_customer(session=session, customer_id=customer_id)

    def only(table: str, *columns: str) -> tuple[Any, ...]:
        (row,) = after[table] if table != "customer" else [after[table]]
        return tuple(row[c] for c in columns)

    assert only("customer", "first_name", "segment", "language", "timezone") == (
        None,
        "standard",
        "en",
        "UTC",
    )
    assert only("order", "number", "total", "tracking_code", "carrier")[1:] == ("50.00", None, None)
    assert only("order", "number")[0].startswith("T-")  # the invoice's number, for the books
    assert only("refund", "amount", "status", "reason") == ("50.00", "paid", None)
    assert only("complaint", "category", "team") == ("delivery", "logistics")
    assert only("handoff", "reason", "mode", "priority") == ("customer_request", "live", 3)
    assert only("delivery", "idempotency_key", "skip_reason", "status") == (
        f"win_back:customer:{customer_id}:2026-06-15",
        "quiet_hours",
        "skipped",
    )
    assert only("interaction_event", "kind", "intent", "data") == (
        "csat",
        "rate",
        {"survey_id": 7, "recovery_case": None, "cues": {"irritable": 2}},
    )
    assert only("consent", "source", "granted") == ("web:chat", True)
    assert only("survey", "score") == (2,)
    assert only("agent_note", "text") == ("[erased]",)
    assert only("case_event", "kind", "actor", "to_value", "text") == (
        "answer",
        "customer",
        "in_progress",
        None,
    )
    noted = [e["details"] for e in after["audit_log"] if e["action"] == "noted"]
    assert noted and all(d == {"conversation_id": owned["conversation"][0]} for d in noted)
    assert "channel_identity" not in after
    session.rollback()


def a_tracker_store(path: Path, sender_ids: list[str]) -> None:
    """A tracker store shaped like Rasa's SQL one, with the customers' words in their events."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA secure_delete=OFF")
    connection.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255)"
        " NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)"
    )
    for sender_id in sender_ids:
        words = json.dumps({"event": "user", "text": f"I am {sender_id}"})
        connection.executemany(
            "INSERT INTO events (sender_id, type_name, data) VALUES (?, 'user', ?)", [(sender_id, words)] * 20
        )
    connection.commit()
    connection.close()


def test_erasure_leaves_no_trace_in_the_database_files(tmp_path: Path) -> None:
    """What SQLite overwrites or deletes can stay in the file's free space and write-ahead log."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    engine = engine_for(url)
    # As on SQLite builds whose default leaves deleted content in place (Debian's zeroes it).
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA secure_delete=OFF"))
    try:
        with Session(engine) as session:
            owned = a_planted_customer(session, ERASED, "ulla")
            a_planted_customer(session, KEPT, "bror")
            senders = list(session.scalars(select(Conversation.sender_id)))
            session.commit()
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # as once the data is old
        a_tracker_store(tmp_path / "tracker.db", senders)
        before = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert ERASED[:8].encode() in before and KEPT[:8].encode() in before

        forget(
            database_url=url,
            tracker_db=tmp_path / "tracker.db",
            customer_id=owned["customer"][0],
            actor="cli",
        )

        files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert {name for name, data in files.items() if any(n.encode() in data for n in NEEDLES)} == set()
        assert KEPT[:8].encode() in files["crm.db"] and KEPT[:8].encode() in files["tracker.db"]
    finally:
        engine.dispose()
