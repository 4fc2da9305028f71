"""A new delivery address or name in chat: read and checked (hostile input refused with its reason),
stored on the right customer only, the old value audited, the shop told through the customer.updated
webhook (delivered to a real local receiver), and the customer told what becomes of their orders.
Real CRM on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.actions.base import current_settings
from bot.actions.contact import ActionUpdateContactDetails, ValidateContactForm, order_list, topic_of
from bot.crm import addresses, webhooks
from bot.crm.addresses import AddressProblem, AddressRefused, NameProblem, NameRefused
from bot.crm.db import make_engine
from bot.crm.models import (
    Agent,
    AuditLog,
    Customer,
    MailPurpose,
    OrderStatus,
    OutboundMail,
    Role,
    WebhookDelivery,
)
from bot.crm.models.enums import CountryCode
from scheduler.webhooks import WebhookSender, http_post
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_customer, make_order
from tests.scheduler.test_webhooks import Receiver, _free_port

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = YAML(typ="safe").load((ROOT / "domain.yml").read_text())
NEW = "Kastanienallee 8, 10435 Berlin, Germany"


# --- reading an address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14 Park Lane, Leeds LS1 4DY, United Kingdom", ("14 Park Lane", None, "LS1 4DY", "Leeds", "GB")),
        ("new address is 14 park lane, leeds ls1 4dy", ("14 park lane", None, "LS1 4DY", "leeds", "GB")),
        ("Hauptstraße 12\n10115 Berlin\nDeutschland", ("Hauptstraße 12", None, "10115", "Berlin", "DE")),
        (
            "Flat 3, 41 Victoria Road, Bristol BS8 2EX, UK",
            ("Flat 3", "41 Victoria Road", "BS8 2EX", "Bristol", "GB"),
        ),
        ("Calle Mayor 9, 2º izq, 28013 Madrid, España", ("Calle Mayor 9", "2º izq", "28013", "Madrid", "ES")),
        ("Keizersgracht 120, 1015 CX Amsterdam", ("Keizersgracht 120", None, "1015 CX", "Amsterdam", "NL")),
        ("ul. Długa 4/6, 80-827 Gdańsk, Poland", ("ul. Długa 4/6", None, "80-827", "Gdańsk", "PL")),
        (
            "5 Marine Parade, Dún Laoghaire, A96 X2P4, Ireland",
            ("5 Marine Parade", None, "A96 X2P4", "Dún Laoghaire", "IE"),
        ),
        (
            "742 Evergreen Terrace, Springfield, OR 97477, USA",
            ("742 Evergreen Terrace", None, "97477", "Springfield OR", "US"),
        ),
        (
            "東京都千代田区千代田1-1, 100-8111 Tokyo, Japan",
            ("東京都千代田区千代田1-1", None, "100-8111", "Tokyo", "JP"),
        ),
        # Full-width digits and letters (a phone's IME) are read as the ASCII they stand for.
        (
            "Ｈａｕｐｔｓｔｒａßｅ １２, １０１１５ Berlin, Germany",
            ("Hauptstraße 12", None, "10115", "Berlin", "DE"),
        ),
    ],
)
def test_an_address_is_read_into_its_parts(text: str, expected: tuple[str | None, ...]) -> None:
    address = addresses.parse_address(text)
    assert (address.line1, address.line2, address.postal_code, address.city, address.country) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<script>alert(1)</script>, 10115 Berlin, Germany", AddressProblem.ODD_CHARACTERS),
        ('<img src=x onerror="alert(1)">', AddressProblem.ODD_CHARACTERS),
        ("'; DROP TABLE customer;--", AddressProblem.ODD_CHARACTERS),
        ("1 Main St, 10115 Berlin, Germany' OR '1'='1", AddressProblem.ODD_CHARACTERS),
        ("Hauptstr\u202e 12, 10115 Berlin, Germany", AddressProblem.ODD_CHARACTERS),  # right-to-left override
        ("Haupt\u200bstraße 12, 10115 Berlin, Germany", AddressProblem.ODD_CHARACTERS),  # zero-width space
        ("Hauptstraße 12\x00, 10115 Berlin, Germany", AddressProblem.ODD_CHARACTERS),  # NUL
        ("🏠 Hauptstraße 12, 10115 Berlin, Germany", AddressProblem.ODD_CHARACTERS),
        ("Hauptstraße 12, " + "Berlin " * 60 + "10115, Germany", AddressProblem.TOO_LONG),
        ("A" * 100_000, AddressProblem.TOO_LONG),
        ("asdf 12, 10115 Berlin, Germany", AddressProblem.NO_STREET),
        ("12, 10115 Berlin, Germany", AddressProblem.NO_STREET),
        ("Hauptstraße 12, Berlin, Germany", AddressProblem.NO_POSTCODE),
        ("Hauptstraße 12, 1011 Berlin, Germany", AddressProblem.BAD_POSTCODE),
        ("Hauptstraße 12, 10115, Germany", AddressProblem.NO_CITY),
        ("Hauptstraße 12, 10115 Berlin", AddressProblem.NO_COUNTRY),
        ("Main Street 1, 10115 Berlin, Narnia", AddressProblem.NO_COUNTRY),
        ("I moved last week", AddressProblem.NO_POSTCODE),
        ("", AddressProblem.NO_STREET),
    ],
)
def test_a_bad_address_is_refused_with_what_it_lacks(text: str, problem: AddressProblem) -> None:
    with pytest.raises(AddressRefused) as refused:
        addresses.parse_address(text)
    assert refused.value.problem is problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Anna Novak", ("Anna", "Novak")),
        ("my name is Siobhan O'Connor", ("Siobhan", "O'Connor")),
        ("it's Jean-Luc Moreau now", ("Jean-Luc", "Moreau")),
        ("Mrs Anna Maria Novak", ("Anna Maria", "Novak")),
        ("Katarzyna Wiśniewska", ("Katarzyna", "Wiśniewska")),
        # A lead-in ends at a word's end: "I'm" is not the start of Imogen, nor "use" of Usenko.
        ("Imogen Smith", ("Imogen", "Smith")),
        ("Usenko Petrov", ("Usenko", "Petrov")),
    ],
)
def test_a_name_is_read_as_first_and_last(text: str, expected: tuple[str, str]) -> None:
    assert addresses.parse_name(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Anna", NameProblem.FULL_NAME),
        ("<b>Anna</b> Novak", NameProblem.ODD_CHARACTERS),
        ("Robert'); DROP TABLE customer;--", NameProblem.ODD_CHARACTERS),
        ("R2D2 Droid", NameProblem.ODD_CHARACTERS),
        ("Anna\u200b Novak", NameProblem.ODD_CHARACTERS),
        ("Anna " + "x" * 90, NameProblem.TOO_LONG),
        ("Anna " * 200, NameProblem.TOO_LONG),
        ("aaaa bbbb", NameProblem.FULL_NAME),
    ],
)
def test_a_bad_name_is_refused_with_what_it_lacks(text: str, problem: NameProblem) -> None:
    with pytest.raises(NameRefused) as refused:
        addresses.parse_name(text)
    assert refused.value.problem is problem


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("I moved", "address"),
        ("change my delivery address", "address"),
        ("the house number on my account is wrong", "address"),
        ("wrong name on my account", "name"),
        ("I got married and changed my surname", "name"),
        ("my surname is misspelt on every email you send", "name"),
        ("my email address is spelt wrong", "contact"),
        ("my date of birth is wrong", "other"),
        ("update my phone number", "contact"),
        ("update my phone and address please", "contact"),  # both: email/phone first, an address is taken too
        ("update my details", "contact"),
    ],
)
def test_the_opening_message_names_what_to_change(text: str, topic: str) -> None:
    assert topic_of(text, has_contact_entity=False) == topic


# --- the form ---------------------------------------------------------------------------------------


def opening(text: str, sender: str = "web:mira") -> Any:
    tracker = make_tracker(sender, text=text, intent="update_contact_details")
    tracker.active_loop = {"name": "contact_form"}
    return tracker


async def start(text: str, sender: str = "web:mira") -> list[dict[str, Any]]:
    return await ValidateContactForm().run(CollectingDispatcher(), opening(text, sender), DOMAIN)


@pytest.fixture
def mira(crm: Session) -> Customer:
    customer = make_customer(crm, first_name="Mira", web_id="mira", external_id="cust-mira")
    crm.commit()
    return customer


async def test_the_form_asks_for_the_address_when_the_opening_message_has_none(mira: Customer) -> None:
    assert await start("I moved last month, can you update my address") == [
        SlotSet("contact_topic", "address")
    ]


async def test_a_whole_address_in_the_opening_message_needs_no_question(mira: Customer) -> None:
    text = f"my new address is {NEW}"
    assert await start(text) == [
        SlotSet("contact_topic", "address"),
        SlotSet("contact_value", text),
        SlotSet("contact_hint", None),
    ]


async def test_an_opening_address_without_its_country_is_asked_for_it(mira: Customer) -> None:
    assert await start("my new address: Hauptstraße 12, 10115 Berlin") == [
        SlotSet("contact_topic", "address"),
        SlotSet("contact_hint", "no_country"),
    ]


async def test_a_guest_is_told_at_once_rather_than_asked_for_an_address_it_cannot_change(
    mira: Customer,
) -> None:
    for text in ("I moved, please change my address", "wrong name on my account"):
        events = await start(text, sender="web:stranger-2")
        assert events[1:] == [SlotSet("contact_value", "-"), SlotSet("contact_hint", "guest")]


async def test_email_and_phone_need_no_shop_account(crm: Session) -> None:
    assert await start("I want to change my phone number", sender="web:stranger-3") == [
        SlotSet("contact_topic", "contact")
    ]


async def test_a_birthday_is_not_changed_in_chat_and_the_form_ends_at_once(mira: Customer) -> None:
    assert await start("my date of birth is wrong on my account") == [
        SlotSet("contact_topic", "other"),
        SlotSet("contact_value", "-"),
        SlotSet("contact_hint", "gave_up"),
    ]


def validate(text: str, **slots: Any) -> dict[str, Any]:
    return ValidateContactForm().validate_contact_value(
        text, CollectingDispatcher(), make_tracker(slots=slots), DOMAIN
    )


def test_an_address_answer_is_taken_or_asked_again_saying_what_it_lacks_and_a_second_miss_ends() -> None:
    assert validate(NEW, contact_topic="address") == {"contact_value": NEW, "contact_hint": None}
    first = validate("Kastanienallee 8, Berlin, Germany", contact_topic="address")
    assert first == {"contact_value": None, "contact_hint": "no_postcode"}
    second = validate("<b>Kastanienallee 8</b>", contact_topic="address", contact_hint="no_postcode")
    assert second == {"contact_value": "-", "contact_hint": "gave_up"}


def test_a_name_answer_needs_a_first_and_a_last_name() -> None:
    assert validate("Anna", contact_topic="name") == {"contact_value": None, "contact_hint": "full_name"}
    assert validate("Anna Novak", contact_topic="name") == {
        "contact_value": "Anna Novak",
        "contact_hint": None,
    }


def test_a_whole_address_given_for_new_contact_details_is_taken_as_an_address() -> None:
    assert validate(NEW, contact_topic="contact") == {
        "contact_value": NEW,
        "contact_hint": None,
        "contact_topic": "address",
    }


# --- the change, on a real CRM ----------------------------------------------------------------------


def shop_customer(session: Session, **fields: Any) -> Customer:
    customer = make_customer(
        session,
        first_name="Mira",
        last_name="Kovac",
        web_id="mira",
        external_id="cust-mira",
        address_line1="Old Road 1",
        postal_code="10117",
        city="Berlin",
        country="DE",
        **fields,
    )
    make_order(session, customer, number="CL-300001", status=OrderStatus.PLACED, days_ago=1)
    make_order(session, customer, number="CL-300002", status=OrderStatus.SHIPPED, days_ago=3)
    make_order(session, customer, number="CL-300003", status=OrderStatus.PLACED, days_ago=0.5)
    make_order(session, customer, number="CL-300004", status=OrderStatus.DELIVERED, days_ago=30)
    return customer


def subscribe(session: Session, url: str = "https://shop.example/hooks") -> str:
    admin = Agent(username="ada", display_name="Ada", role=Role.ADMIN, password_hash="not-a-login")
    session.add(admin)
    session.flush()
    _, secret = webhooks.create_subscription(
        session=session, url=url, events=["customer.updated"], agent_id=admin.id, environment="test"
    )
    return secret


def address_tracker(sender: str = "web:mira", value: str = NEW) -> Any:
    return make_tracker(sender, slots={"contact_value": value, "contact_topic": "address"})


async def test_a_new_address_is_stored_audited_and_sent_to_the_shop_with_the_orders_it_touches(
    crm_both: Session,
) -> None:
    crm = crm_both
    mira = shop_customer(crm)
    subscribe(crm)
    crm.commit()

    events, _ = await run_action(ActionUpdateContactDetails(), address_tracker())

    assert events == [
        *context(mira),
        SlotSet("contact_kind", "address"),
        SlotSet("contact_old", "Old Road 1, 10117 Berlin, Germany"),
        SlotSet("contact_new", "Kastanienallee 8, 10435 Berlin, Germany"),
        SlotSet("orders_pending", "orders CL-300001 and CL-300003"),
        SlotSet("orders_shipped", "order CL-300002"),
        SlotSet("address_orders", "told_both"),
        SlotSet("contact_value", None),
        SlotSet("contact_hint", None),
    ]
    crm.expire_all()
    stored = crm.get(Customer, mira.id)
    assert stored is not None and addresses.address_of(stored) == addresses.parse_address(NEW)
    assert stored.address_updated_at is not None
    audit = crm.scalars(select(AuditLog).where(AuditLog.action == "address_changed")).one()
    assert (audit.entity, audit.entity_id) == ("customer", mira.id)
    assert audit.details == {
        "source": "web",
        "old": {
            "line1": "Old Road 1",
            "line2": None,
            "postal_code": "10117",
            "city": "Berlin",
            "country": "DE",
        },
    }
    delivery = crm.scalars(select(WebhookDelivery)).one()
    assert delivery.event == "customer.updated" and delivery.customer_id == mira.id
    assert delivery.payload["data"] == {
        "customer_id": mira.id,
        "customer_external_id": "cust-mira",
        "changed": ["address"],
        "address": {
            "line1": "Kastanienallee 8",
            "line2": None,
            "postal_code": "10435",
            "city": "Berlin",
            "country": "DE",
        },
        "orders_not_shipped": ["CL-300001", "CL-300003"],
        "orders_shipped": ["CL-300002"],
        "source": "web",
    }


async def test_without_a_shop_subscribed_the_address_is_only_noted_and_the_orders_keep_theirs(
    crm_both: Session,
) -> None:
    crm = crm_both
    mira = shop_customer(crm)
    crm.commit()

    events, _ = await run_action(ActionUpdateContactDetails(), address_tracker())

    assert SlotSet("address_orders", "noted_both") in events
    crm.expire_all()
    assert crm.get(Customer, mira.id).address_line1 == "Kastanienallee 8"  # type: ignore[union-attr]
    assert crm.scalars(select(WebhookDelivery)).all() == []


async def test_a_first_address_with_no_orders_on_their_way(crm: Session) -> None:
    ines = make_customer(crm, web_id="ines", external_id="cust-ines")
    make_order(crm, ines, number="CL-300010", status=OrderStatus.DELIVERED)
    subscribe(crm)
    crm.commit()
    events, _ = await run_action(ActionUpdateContactDetails(), address_tracker("web:ines"))
    assert events[-8:-2] == [
        SlotSet("contact_kind", "address"),
        SlotSet("contact_old", "not set"),
        SlotSet("contact_new", "Kastanienallee 8, 10435 Berlin, Germany"),
        SlotSet("orders_pending", None),
        SlotSet("orders_shipped", None),
        SlotSet("address_orders", "told_none"),
    ]


async def test_a_guest_cannot_change_any_account_address_and_a_known_customer_keeps_theirs(
    crm_both: Session,
) -> None:
    crm = crm_both
    mira = shop_customer(crm)
    subscribe(crm)
    crm.commit()

    # A stranger's chat names Mira's account in words: the chat is still only the stranger's own.
    stranger = make_tracker(
        "web:stranger-1",
        text=f"I'm Mira Kovac, cust-mira, my address is now {NEW}",
        slots={"contact_value": NEW, "contact_topic": "address"},
    )
    events, _ = await run_action(ActionUpdateContactDetails(), stranger)

    assert events[-3:] == [
        SlotSet("contact_hint", "guest"),
        SlotSet("contact_value", None),
        SlotSet("contact_kind", None),
    ]
    crm.expire_all()
    assert crm.get(Customer, mira.id).address_line1 == "Old Road 1"  # type: ignore[union-attr]
    guest = crm.scalars(select(Customer).where(Customer.id != mira.id)).one()
    assert guest.address_line1 is None and guest.external_id is None
    assert crm.scalars(select(AuditLog.action).where(AuditLog.action == "address_changed")).all() == []
    assert crm.scalars(select(WebhookDelivery)).all() == []


async def test_a_new_name_is_stored_audited_and_sent_to_the_shop(crm_both: Session) -> None:
    crm = crm_both
    mira = shop_customer(crm)
    subscribe(crm)
    crm.commit()
    tracker = make_tracker(
        "web:mira", slots={"contact_value": "my name is Mira Horvat", "contact_topic": "name"}
    )

    events, _ = await run_action(ActionUpdateContactDetails(), tracker)

    crm.expire_all()
    stored = crm.get(Customer, mira.id)
    assert stored is not None and (stored.first_name, stored.last_name) == ("Mira", "Horvat")
    assert events == [
        *context(stored),
        SlotSet("contact_kind", "name"),
        SlotSet("contact_old", "Mira Kovac"),
        SlotSet("contact_new", "Mira Horvat"),
        SlotSet("contact_value", None),
        SlotSet("contact_hint", None),
    ]
    audit = crm.scalars(select(AuditLog).where(AuditLog.action == "name_changed")).one()
    assert audit.details == {"source": "web", "old": {"first_name": "Mira", "last_name": "Kovac"}}
    data = crm.scalars(select(WebhookDelivery)).one().payload["data"]
    assert (data["changed"], data["first_name"], data["last_name"]) == (["name"], "Mira", "Horvat")


async def test_the_shop_receives_the_address_change_signed_at_its_webhook(crm: Session) -> None:
    receiver = Receiver(_free_port())
    receiver.start()
    try:
        mira = shop_customer(crm)
        secret = subscribe(crm, f"http://127.0.0.1:{receiver.port}/hooks")
        crm.commit()
        await run_action(ActionUpdateContactDetails(), address_tracker())

        engine = make_engine(current_settings().database_url)
        sender = WebhookSender(
            sessionmaker(bind=engine, expire_on_commit=False),
            http_post(timeout=2, public_only=False),
            lambda: datetime.now(timezone.utc),
        )
        assert sender.run_due() == {"delivered": 1}
        engine.dispose()
    finally:
        receiver.stop()
    ((headers, body),) = receiver.got
    assert webhooks.verify_signature(secret, body, headers[webhooks.SIGNATURE_HEADER])
    event = json.loads(body)
    assert event["type"] == "customer.updated"
    assert event["data"]["customer_id"] == mira.id
    assert event["data"]["address"]["postal_code"] == "10435"
    assert event["data"]["orders_not_shipped"] == ["CL-300001", "CL-300003"]


def test_order_lists_read_as_a_sentence() -> None:
    assert order_list([]) is None
    assert order_list(["CL-1"]) == "order CL-1"
    assert order_list(["CL-1", "CL-2", "CL-3"]) == "orders CL-1, CL-2 and CL-3"


# --- one answer for each outcome ----------------------------------------------------------------------


def matching(response: str, slots: dict[str, Any]) -> list[str]:
    """The variants Rasa would choose among (tests only the conditional ones, as Rasa does first)."""
    chosen = []
    for variant in DOMAIN["responses"][response]:
        conditions = variant.get("condition")
        if conditions and all(slots.get(c["name"]) == c["value"] for c in conditions):
            chosen.append(variant["text"])
    return chosen or [v["text"] for v in DOMAIN["responses"][response] if not v.get("condition")]


OUTCOMES = [
    {"system_trouble": True, "contact_kind": "address", "address_orders": "told_both"},  # a stale kind
    *[
        {"system_trouble": False, "contact_kind": "address", "address_orders": value}
        for value in DOMAIN["slots"]["address_orders"]["values"]
    ],
    {"system_trouble": False, "contact_kind": "name"},
    {"system_trouble": False, "contact_hint": "guest", "contact_topic": "address", "email_state": "sent"},
    *[
        {"system_trouble": False, "contact_hint": "gave_up", "contact_topic": topic, "email_state": "sent"}
        for topic in DOMAIN["slots"]["contact_topic"]["values"]
    ],
    {"system_trouble": False, "contact_kind": "email", "email_state": "none"},
    {"system_trouble": False, "contact_kind": "email", "email_state": "unverified"},
    {"system_trouble": False, "contact_kind": "phone", "email_state": "sent"},
]


@pytest.mark.parametrize("slots", OUTCOMES)
def test_every_outcome_has_exactly_one_answer_and_it_says_what_happened(slots: dict[str, Any]) -> None:
    (text,) = matching("utter_contact_updated", slots)
    if slots.get("contact_kind") == "address" and not slots.get("system_trouble"):
        outcome = slots["address_orders"]
        assert ("passed it on to the shop" in text) == outcome.startswith("told")
        assert ("{orders_pending}" in text) == outcome.endswith(("pending", "both"))
        assert ("{orders_shipped}" in text and "old address" in text) == outcome.endswith(("shipped", "both"))


@pytest.mark.parametrize("topic", ["contact", "address", "name"])
def test_every_question_and_every_miss_has_exactly_one_wording(topic: str) -> None:
    hints = [None, *DOMAIN["slots"]["contact_hint"]["values"]]
    for hint in hints:
        texts = matching("utter_ask_contact_value", {"contact_topic": topic, "contact_hint": hint})
        assert len(texts) == 1, (topic, hint, texts)


def test_every_country_an_address_may_name_can_be_stored() -> None:
    assert [country.code for country in addresses.COUNTRIES] == [code.value for code in CountryCode]


@pytest.mark.parametrize(("confirmed", "mailed"), [(True, True), (False, False)])
async def test_an_address_change_is_noted_by_mail_only_to_a_confirmed_address(
    crm: Session, confirmed: bool, mailed: bool
) -> None:
    mira = shop_customer(crm, email="mira@example.com")
    mira.email_verified_at = datetime.now(timezone.utc) if confirmed else None
    crm.commit()

    await run_action(ActionUpdateContactDetails(), address_tracker())

    notes = crm.scalars(select(OutboundMail)).all()
    assert [(m.purpose, m.to_address) for m in notes] == (
        [(MailPurpose.DELIVERY_ADDRESS_CHANGED, "mira@example.com")] if mailed else []
    )
    if mailed:
        assert "Kastanienallee 8, 10435 Berlin, Germany" in notes[0].body and "not you" in notes[0].body
