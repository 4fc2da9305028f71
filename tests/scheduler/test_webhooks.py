"""Outbound webhooks on a real CRM (SQLite and PostgreSQL): each event writes its outbox row in the
event's own transaction, and the scheduler's sender POSTs it to a real local HTTP receiver, signed,
in order per subscription, retrying after the receiver was down (an injected clock) for a day."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import webhooks
from bot.crm.complaints import file_complaint, resolve_complaint
from bot.crm.consent import set_consent
from bot.crm.db import make_engine
from bot.crm.handoffs import open_handoff
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Agent,
    Channel,
    ComplaintCategory,
    ConsentPurpose,
    Conversation,
    LeaveReason,
    Product,
    Role,
    Segment,
    Subscription,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookStatus,
)
from bot.crm.privacy import erase_customer
from bot.crm.retention import decide, record_cancellation, record_offer
from bot.crm.segments import assign_segments
from bot.crm.surveys import record_rating
from scheduler.webhooks import WebhookSender, http_post, is_public
from tests.factories import make_customer, make_order

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def _admin(session: Session) -> Agent:
    number = session.scalar(select(func.count(Agent.id)))
    agent = Agent(username=f"admin{number}", display_name="Ada", role=Role.ADMIN, password_hash="not-a-login")
    session.add(agent)
    session.flush()
    return agent


def _subscribe(
    session: Session, url: str = "https://shop.example/hooks", events: list[str] | None = None
) -> str:
    _, secret = webhooks.create_subscription(
        session=session,
        url=url,
        events=events or list(webhooks.EVENTS),
        agent_id=_admin(session).id,
        environment="test",
    )
    return secret


def _outbox(session: Session) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


# --- the outbox row belongs to the event's transaction -------------------------------------------


def test_a_rolled_back_event_leaves_no_outbox_row_and_a_kept_one_leaves_exactly_one(session: Session) -> None:
    _subscribe(session)
    customer = make_customer(session, external_id="shop-cust-7")

    rolled_back = session.begin_nested()
    file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.DELIVERY,
        description="The parcel never came, my address is 1 Main St",
        order=None,
        angry=False,
    )
    assert [d.event for d in _outbox(session)] == ["complaint.opened"]
    rolled_back.rollback()
    assert _outbox(session) == []

    filed = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.DELIVERY,
        description="The parcel never came, my address is 1 Main St",
        order=None,
        angry=False,
    )
    (delivery,) = _outbox(session)
    data = delivery.payload["data"]
    assert delivery.payload["type"] == "complaint.opened" and delivery.payload["id"] == delivery.event_id
    assert data["complaint_id"] == filed.complaint.id
    assert data["customer_id"] == customer.id and data["customer_external_id"] == "shop-cust-7"
    assert data["status"] == "open" and data["category"] == "delivery"
    assert "Main St" not in json.dumps(delivery.payload)  # ids and state, not the customer's words


def test_only_subscriptions_to_an_event_get_it_and_disabled_ones_get_nothing(session: Session) -> None:
    _subscribe(session, "https://a.example/h", ["survey.rated"])
    _subscribe(session, "https://b.example/h", ["consent.changed"])
    customer = make_customer(session)
    record_rating(session=session, customer=customer, score=5)
    assert [(d.event, d.subscription_id) for d in _outbox(session)] == [
        ("survey.rated", _outbox(session)[0].subscription_id)
    ]
    for row in webhooks.list_subscriptions(session=session):
        webhooks.disable_subscription(session=session, subscription_id=row.id, agent_id=_admin(session).id)
    record_rating(session=session, customer=customer, score=4)
    assert len(_outbox(session)) == 1


def test_every_wired_event_is_emitted_where_it_happens(session: Session) -> None:
    _subscribe(session)
    customer = make_customer(session)
    conversation = Conversation(
        sender_id=f"web:hook-{customer.id}", customer_id=customer.id, channel=Channel.WEB
    )
    session.add(conversation)
    product = Product(
        sku=f"PLAN-H{customer.id}", name="Plus", category="membership", price=Decimal("9.90"), is_plan=True
    )
    session.add(product)
    session.flush()
    subscription = Subscription(
        customer_id=customer.id,
        product_id=product.id,
        status=SubscriptionStatus.ACTIVE,
        monthly_price=product.price,
        started_at=T0 - timedelta(days=40),
    )
    session.add(subscription)
    session.flush()

    filed = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.PRODUCT_QUALITY,
        description=None,
        order=None,
        angry=False,
        now=T0,
    )
    resolve_complaint(session=session, complaint=filed.complaint, resolution="Replaced it", now=T0)
    attempt = record_offer(
        session=session,
        customer=customer,
        reason=LeaveReason.PRICE,
        offer=None,
        attempt_no=1,
        conversation=conversation,
        now=T0,
    )
    decide(
        session=session, attempt=attempt, accepted=True, customer=customer, conversation=conversation, now=T0
    )
    record_cancellation(session=session, customer=customer, conversation=conversation, now=T0)
    open_handoff(session=session, customer=customer, conversation=conversation, reason="asked", now=T0)
    set_consent(
        session=session, customer=customer, purpose=ConsentPurpose.MARKETING, granted=True, source="chat"
    )
    set_consent(
        session=session, customer=customer, purpose=ConsentPurpose.MARKETING, granted=True, source="chat"
    )
    record_rating(session=session, customer=customer, score=2, now=T0)

    events = [d.event for d in _outbox(session)]
    assert events == [
        "complaint.opened",
        "complaint.resolved",
        "retention.saved",
        "retention.lost",
        "subscription.cancel_requested",
        "handoff.requested",
        "consent.changed",  # once: the second opt-in changed nothing
        "survey.rated",
        "complaint.opened",  # the low score's recovery case
    ]
    by_event = {d.event: d.payload["data"] for d in _outbox(session)}
    assert by_event["complaint.resolved"]["status"] == "resolved"
    assert by_event["subscription.cancel_requested"]["subscription_id"] == subscription.id
    assert by_event["survey.rated"]["score"] == 2 and by_event["survey.rated"]["recovery_complaint_id"]
    assert by_event["consent.changed"] == {
        **by_event["consent.changed"],
        "purpose": "marketing",
        "granted": True,
    }


def test_a_segment_change_is_emitted_and_an_unchanged_segment_is_not(session: Session) -> None:
    _subscribe(session, events=["customer.segment_changed"])
    big = make_customer(session, segment=Segment.STANDARD)
    make_order(session, big, total="5000.00", days_ago=10)
    now = datetime.now(timezone.utc)
    assign_segments(session=session, now=now)
    changed = [d.payload["data"] for d in _outbox(session)]
    assign_segments(session=session, now=now)

    assert len(_outbox(session)) == len(changed)  # the second run moved nobody
    mine = [c for c in changed if c["customer_id"] == big.id]
    assert mine and mine[0]["from"] == "standard" and mine[0]["to"] != "standard"


def test_erasing_a_customer_deletes_the_deliveries_about_them_only(session: Session) -> None:
    _subscribe(session, events=["survey.rated"])
    leaving, staying = make_customer(session), make_customer(session)
    record_rating(session=session, customer=leaving, score=5)
    record_rating(session=session, customer=staying, score=5)

    erase_customer(session=session, customer_id=leaving.id, actor="agent:1")

    assert [d.customer_id for d in _outbox(session)] == [staying.id]


# --- the sender, against a real receiver ---------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps what it was sent and answers `status`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 204
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions that commit, as the scheduler's do: a fresh SQLite file or the scratch PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_scratch")
    engine = make_engine(url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(_free_port())
    yield receiver
    receiver.stop()


def test_a_receiver_that_was_down_gets_every_event_signed_and_in_order(
    factory: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    with factory.begin() as session:
        secret = _subscribe(
            session, f"http://127.0.0.1:{receiver.port}/hooks", ["complaint.opened", "complaint.resolved"]
        )
        customer = make_customer(session)
        first = file_complaint(
            session=session,
            customer=customer,
            category=ComplaintCategory.DELIVERY,
            description=None,
            order=None,
            angry=False,
            now=T0,
        ).complaint
        resolve_complaint(session=session, complaint=first, resolution="Found it", now=T0)
        second = file_complaint(
            session=session,
            customer=customer,
            category=ComplaintCategory.PRODUCT_QUALITY,
            description=None,
            order=None,
            angry=False,
            now=T0,
        ).complaint
    sender = WebhookSender(factory, http_post(timeout=2, public_only=False), clock)

    assert sender.run_due() == {"retry": 1}  # down: the first fails, the others wait behind it
    with factory() as session:
        assert [(d.attempts, d.status) for d in _outbox(session)] == [
            (1, WebhookStatus.PENDING),
            (0, WebhookStatus.PENDING),
            (0, WebhookStatus.PENDING),
        ]
        assert _outbox(session)[0].last_error == "ConnectError"

    receiver.start()
    clock.now = T0 + timedelta(seconds=29)
    assert sender.run_due() == {} and receiver.got == []  # its retry is not due yet
    clock.now = T0 + timedelta(seconds=30)
    assert sender.run_due() == {"delivered": 3}

    sent_at = clock.now.timestamp()
    kinds = [(json.loads(body)["type"], json.loads(body)["data"]["complaint_id"]) for _, body in receiver.got]
    assert kinds == [
        ("complaint.opened", first.id),
        ("complaint.resolved", first.id),
        ("complaint.opened", second.id),
    ]
    for headers, body in receiver.got:
        header = headers[webhooks.SIGNATURE_HEADER]
        assert header.startswith(f"t={int(sent_at)},v1=")
        assert webhooks.verify_signature(secret, body, header, now=sent_at)
        assert not webhooks.verify_signature(secret, body + b" ", header, now=sent_at)  # tampered
        assert not webhooks.verify_signature("whsec_other", body, header, now=sent_at)  # forged
        assert not webhooks.verify_signature(secret, body, header, now=sent_at + 301)  # replayed later
        assert headers["CareLoop-Delivery"] == json.loads(body)["id"]
    assert sender.run_due() == {}  # nothing twice
    with factory() as session:
        assert {d.status for d in _outbox(session)} == {WebhookStatus.DELIVERED}


def test_a_failing_delivery_is_retried_with_backoff_for_a_day_then_failed_and_can_be_resent(
    factory: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    receiver.status = 500
    receiver.start()
    with factory.begin() as session:
        _subscribe(session, f"http://127.0.0.1:{receiver.port}/hooks", ["survey.rated"])
        customer = make_customer(session)
        record_rating(session=session, customer=customer, score=5, now=T0)
        record_rating(session=session, customer=customer, score=4, now=T0)
    sender = WebhookSender(factory, http_post(timeout=2, public_only=False), clock)

    gaps = []
    while True:
        outcomes = sender.run_due()
        with factory() as session:
            head = _outbox(session)[0]
        if head.status is WebhookStatus.FAILED:
            break
        assert outcomes == {"retry": 1}
        gaps.append(head.next_attempt_at - clock.now)
        clock.now = head.next_attempt_at
    assert gaps[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(gaps) == timedelta(hours=1)
    assert timedelta(days=1) - timedelta(hours=1) <= clock.now - T0 < timedelta(days=1)
    assert outcomes == {"failed": 1, "retry": 1}  # given up; the next in line is tried at once
    assert [json.loads(body)["data"]["score"] for _, body in receiver.got].count(4) == 1

    receiver.status = 200
    with factory.begin() as session:
        webhooks.resend(session=session, delivery_id=head.id, agent_id=_admin(session).id, now=clock.now)
    clock.now += timedelta(hours=1)
    assert sender.run_due() == {"delivered": 2}
    scores = [json.loads(body)["data"]["score"] for _, body in receiver.got[-2:]]
    assert scores == [5, 4]  # the resent one first: it is older


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "environment", "reason"),
    [
        ("http://shop.example/h", "production", "https://"),
        ("https://user:pw@shop.example/h", "production", "credentials"),
        ("https://127.0.0.1/h", "production", "private network"),
        ("https://10.1.2.3/h", "production", "private network"),
        ("https://localhost:8443/h", "production", "private network"),
        ("ftp://shop.example/h", "test", "https://"),
        ("https:///nohost", "production", "names a host"),
        ("https://shop.example/h#x", "production", "fragment"),
        ("https://shop.example:99999/h", "production", "not a valid URL"),
        ("", "production", "Give the URL"),
    ],
)
def test_a_bad_url_is_refused_with_a_reason(url: str, environment: str, reason: str) -> None:
    with pytest.raises(webhooks.WebhookRefused, match=reason):
        webhooks.clean_url(url, environment=environment)


def test_a_good_url_and_known_events_are_accepted() -> None:
    assert webhooks.clean_url(" https://shop.example/careloop ", environment="production") == (
        "https://shop.example/careloop"
    )
    assert webhooks.clean_url("http://127.0.0.1:9/h", environment="development") == "http://127.0.0.1:9/h"
    assert webhooks.clean_events(["survey.rated", "complaint.opened"]) == ["complaint.opened", "survey.rated"]
    with pytest.raises(webhooks.WebhookRefused, match="Unknown event"):
        webhooks.clean_events(["order.shipped"])
    with pytest.raises(webhooks.WebhookRefused, match="at least one"):
        webhooks.clean_events([])


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::5", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_only_public_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("answers", [["127.0.0.1"], ["93.184.215.14", "10.0.0.7"], []])
def test_a_host_that_resolves_inside_gets_no_request(
    factory: sessionmaker[Session], receiver: Receiver, answers: list[str]
) -> None:
    """A shop's hostname whose DNS answer points at this server (or a private network, even next to a
    public address) is never connected to; the delivery waits with the reason, and nothing arrives."""
    receiver.start()
    with factory.begin() as session:
        _subscribe(session, f"http://hooks.shop.example:{receiver.port}/hooks", ["survey.rated"])
        record_rating(session=session, customer=make_customer(session), score=5, now=T0)
    asked: list[tuple[str, int]] = []

    def dns(host: str, port: int) -> list[str]:  # the network's answer, faked at the boundary
        asked.append((host, port))
        return answers

    sender = WebhookSender(factory, http_post(timeout=2, resolver=dns), Clock())

    assert sender.run_due() == {"retry": 1}
    assert asked == [("hooks.shop.example", receiver.port)]
    assert receiver.got == []
    with factory() as session:
        head = _outbox(session)[0]
        assert head.status is WebhookStatus.PENDING
        assert head.last_error == "refused: the host resolves to a private or local address"
