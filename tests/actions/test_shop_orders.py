"""A shop's own order numbers in chat (issue 20): "#10234" or "A-5521" finds the customer's order
by its shop number or shop id, on SQLite and PostgreSQL, and never anyone else's."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy.orm import Session

from bot.actions.formatting import day
from bot.actions.orders import ActionCheckOrderStatus, ActionRequestRefund
from bot.crm.models import Customer, Order, OrderStatus
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
