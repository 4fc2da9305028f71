"""A new delivery address through the real model, the real action server and the real CRM: asked for,
a missing country asked for by name, stored, the orders on their way named truthfully; a guest's
chat changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.crm.models import AuditLog, Channel, ChannelIdentity, Customer, Order, OrderStatus, utcnow
from tests.e2e.conftest import Stack, texts

pytestmark = pytest.mark.e2e


def seed_shop_customer(stack: Stack) -> tuple[int, str, str]:
    """A shop account reachable as `web:e2e-nora`, with one order not shipped yet and one shipped."""
    with stack.crm() as crm:
        customer = Customer(
            first_name="Nora",
            external_id="e2e-shop-nora",
            address_line1="Old Road 1",
            postal_code="10117",
            city="Berlin",
            country="DE",
        )
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id="e2e-nora"))
        crm.add(customer)
        crm.flush()
        now, numbers = utcnow(), []
        for offset, status in ((1, OrderStatus.PLACED), (2, OrderStatus.SHIPPED)):
            number = f"CL-8{customer.id:04d}{offset}"
            crm.add(
                Order(
                    number=number,
                    customer_id=customer.id,
                    status=status,
                    total=Decimal("24.00"),
                    placed_at=now - timedelta(days=offset),
                )
            )
            numbers.append(number)
        crm.commit()
        return customer.id, numbers[0], numbers[1]


def test_a_new_delivery_address_is_asked_checked_stored_and_the_orders_on_their_way_named(
    stack: Stack,
) -> None:
    cid, placed, shipped = seed_shop_customer(stack)
    sender = "web:e2e-nora"

    asked = texts(stack.say(sender, "I've just moved house, can you change my delivery address?"))
    assert "delivery address" in asked and "postal code" in asked
    missing = texts(stack.say(sender, "Lindenstraße 5, 04109 Leipzig"))
    assert "Which country" in missing
    done = texts(stack.say(sender, "Lindenstraße 5, 04109 Leipzig, Germany"))

    assert "Lindenstraße 5, 04109 Leipzig, Germany" in done and "Old Road 1, 10117 Berlin, Germany" in done
    # No shop subscribes to customer.updated here: the unshipped order keeps its address, and says so.
    assert (
        f"keeping the address it was ordered with, because I can't change an order from here: order {placed}"
        in done
    )
    assert f"still going to your old address: order {shipped}" in done
    with stack.crm() as crm:
        stored = crm.get(Customer, cid)
        assert stored is not None and (stored.address_line1, stored.postal_code) == (
            "Lindenstraße 5",
            "04109",
        )
        audit = crm.scalars(
            select(AuditLog).where(AuditLog.entity_id == cid, AuditLog.action == "address_changed")
        ).one()
        assert audit.details["old"]["line1"] == "Old Road 1"


def test_a_guest_chat_changes_no_address(stack: Stack) -> None:
    reply = texts(stack.say("web:e2e-address-guest", "I moved, please update my address"))
    assert "can't tell which shop account this chat belongs to" in reply
