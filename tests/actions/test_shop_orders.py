"""A shop's own order numbers in chat (issue 20): "#10234" or "A-5521" finds the customer's order
by its shop number or shop id, on SQLite and PostgreSQL, and never anyone else's; a visitor who
confirms the address the shop has for a customer chats as that customer."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.formatting import day
from bot.actions.orders import ActionCheckOrderStatus, ActionRequestRefund
from bot.crm import identity, mail
from bot.crm.models import AuditLog, Customer, Order, OrderStatus, utcnow
from bot.crm.queries import ensure_conversation, find_identity
from bot.crm.transcript import find_conversation
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_customer, make_order


@pytest.fixture
def ulla(crm_both: Session) -> Customer:
    customer = make_customer(crm_both, first_name="Ulla", web_id="ulla", external_id="cus_1", timezone="UTC")
    crm_both.commit()
    return customer


def found(order: Order) -> list[SlotSet]:
    return [
        SlotSet("order_lookup", "found"),
        SlotSet("order_id", None),
        SlotSet("order_number", order.number),
        SlotSet("order_date", day(order.placed_at, "UTC")),
        SlotSet("order_eta", "soon"),
        SlotSet("order_carrier", "our courier"),
        SlotSet("order_tracking", "not yet available"),
        SlotSet("order_total", "50.00"),
        SlotSet("order_state", "placed"),
    ]


@pytest.mark.parametrize(
    "text",
    ["where is my order #10234?", "where is order 10234", "#10234", "status of ord_77 please", "ORD_77"],
)
async def test_the_shops_own_number_or_id_finds_the_order(
    crm_both: Session, ulla: Customer, text: str
) -> None:
    asked = make_order(
        crm_both, ulla, number="#10234", external_id="ord_77", status=OrderStatus.PLACED, days_ago=9
    )
    make_order(crm_both, ulla, number="#10300", external_id="ord_90", status=OrderStatus.PLACED, days_ago=1)
    crm_both.commit()

    events, _ = await run_action(
        ActionCheckOrderStatus(), make_tracker("web:ulla", text=text, intent="check_order_status")
    )

    assert events == [*context(ulla), *found(asked)]  # not the latest order (#10300)


async def test_a_number_with_letters_is_found_in_any_case(crm_both: Session, ulla: Customer) -> None:
    make_order(crm_both, ulla, number="A-5522", status=OrderStatus.PLACED, days_ago=1)
    asked = make_order(crm_both, ulla, number="A-5521", status=OrderStatus.PLACED, days_ago=3)
    crm_both.commit()

    events, _ = await run_action(
        ActionCheckOrderStatus(),
        make_tracker("web:ulla", text="any news on a-5521?", intent="check_order_status"),
    )

    assert events == [*context(ulla), *found(asked)]


async def test_another_customers_shop_number_is_not_found_and_not_shown(
    crm_both: Session, ulla: Customer
) -> None:
    other = make_customer(crm_both, first_name="Bror", external_id="cus_2")
    make_order(crm_both, other, number="#20001", external_id="ord_bror", status=OrderStatus.SHIPPED)
    make_order(crm_both, ulla, number="#10234", status=OrderStatus.PLACED)
    crm_both.commit()

    events, _ = await run_action(
        ActionCheckOrderStatus(),
        make_tracker("web:ulla", text="where is order #20001 (ord_bror)", intent="check_order_status"),
    )

    assert events == [*context(ulla), SlotSet("order_lookup", "not_found"), SlotSet("order_id", "20001")]


async def test_words_with_digits_that_name_no_order_leave_the_latest_order(
    crm_both: Session, ulla: Customer
) -> None:
    latest = make_order(crm_both, ulla, number="#10234", status=OrderStatus.PLACED, days_ago=1)
    crm_both.commit()

    events, _ = await run_action(
        ActionCheckOrderStatus(),
        make_tracker(
            "web:ulla", text="I paid 50 euros 3 days ago, where is it?", intent="check_order_status"
        ),
    )

    assert events == [*context(ulla), *found(latest)]


async def test_a_refund_finds_the_order_by_the_shops_number(crm_both: Session, ulla: Customer) -> None:
    make_order(crm_both, ulla, number="#10234", status=OrderStatus.CANCELLED, days_ago=5)
    make_order(crm_both, ulla, number="#10300", status=OrderStatus.DELIVERED, days_ago=1)
    crm_both.commit()

    events, _ = await run_action(
        ActionRequestRefund(),
        make_tracker("web:ulla", text="refund order #10234 please", intent="request_refund"),
    )

    slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
    assert (slots["refund_outcome"], slots["order_number"]) == ("cancelled", "#10234")


def confirm(session: Session, customer: Customer, address: str) -> None:
    """The customer opens the link mailed to `address` (as the gateway's /verify-email does)."""
    verification = mail.start_verification(
        session=session, customer=customer, address=address, secret_key="test-secret"
    )
    assert verification is not None
    token = mail.token_for("test-secret", verification.nonce)
    assert mail.confirm_address(session=session, token=token) is mail.Confirmation.CONFIRMED


async def test_a_visitor_who_confirms_the_shops_address_for_a_customer_chats_as_that_customer(
    crm_both: Session, ulla: Customer
) -> None:
    ulla.email = "Ulla@Example.com"  # as the shop sent it: never confirmed in chat
    order = make_order(crm_both, ulla, number="#10234", status=OrderStatus.PLACED)
    visitor = make_customer(crm_both, first_name=None, web_id="browser-7")
    ensure_conversation(session=crm_both, sender_id="web:browser-7", customer=visitor)
    crm_both.commit()
    before, _ = await run_action(
        ActionCheckOrderStatus(),
        make_tracker("web:browser-7", text="where is #10234", intent="check_order_status"),
    )
    assert SlotSet("order_lookup", "not_found") in before  # a stranger: not Ulla's order

    confirm(crm_both, visitor, "ulla@example.com")
    crm_both.commit()

    after, _ = await run_action(
        ActionCheckOrderStatus(),
        make_tracker("web:browser-7", text="where is #10234", intent="check_order_status"),
    )
    crm_both.refresh(ulla)
    assert after == [*context(ulla), *found(order)]
    assert find_conversation(session=crm_both, sender_id="web:browser-7").customer_id == ulla.id
    assert ulla.email_verified_at is not None
    assert (
        crm_both.scalar(select(AuditLog.entity_id).where(AuditLog.action == "joined_by_confirmed_email"))
        == ulla.id
    )


async def test_a_typed_or_shared_address_joins_nobody(crm_both: Session, ulla: Customer) -> None:
    ulla.email = "family@example.com"
    make_customer(crm_both, first_name="Bror", external_id="cus_2", email="family@example.com")
    typed = make_customer(crm_both, web_id="browser-8", email="ulla@example.com")  # typed, unconfirmed
    shared = make_customer(crm_both, web_id="browser-9")
    crm_both.commit()

    assert identity.join_by_confirmed_email(session=crm_both, customer=typed, now=utcnow()) is None
    confirm(crm_both, shared, "family@example.com")  # two shop customers have it: whose would it be?
    crm_both.commit()

    assert find_identity(session=crm_both, sender_id="web:browser-8").customer_id == typed.id
    assert find_identity(session=crm_both, sender_id="web:browser-9").customer_id == shared.id
