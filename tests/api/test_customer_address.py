"""The inbound API takes a customer's delivery address, checked as one given in chat is
(bot/crm/addresses.py), on SQLite and PostgreSQL: stored, read back, cleared with null, unchanged
when the same; a bad one refused with what is wrong and nothing stored."""

from __future__ import annotations

from sqlalchemy import select

from bot.crm.models import Customer
from tests.api.conftest import Shop, customer

BERLIN = {
    "line1": "Kastanienallee 8",
    "line2": "2. OG",
    "postal_code": "10435",
    "city": "Berlin",
    "country": "de",
}


def test_an_address_is_stored_read_back_unchanged_when_the_same_and_cleared_with_null(shop: Shop) -> None:
    created = shop.post("/customers", customer(address=BERLIN))
    same = shop.post("/customers", customer(minutes=1, address=BERLIN))
    cleared = shop.post("/customers", customer(minutes=2, address=None))

    assert created.status_code == 201
    assert created.json()["address"] == {**BERLIN, "country": "DE"}
    assert same.headers["CareLoop-Outcome"] == "unchanged"
    assert cleared.headers["CareLoop-Outcome"] == "updated" and cleared.json()["address"] is None
    with shop.db() as db:
        stored = db.scalars(select(Customer)).one()
        assert (stored.address_line1, stored.postal_code, stored.country) == (None, None, None)


def test_a_bad_address_is_refused_with_what_is_wrong_and_nothing_is_stored(shop: Shop) -> None:
    refused = {
        "has a postal code that does not fit its country": {**BERLIN, "postal_code": "1043"},
        "needs a country the shop delivers to": {**BERLIN, "country": "ZZ"},
        "contains characters no address has": {**BERLIN, "line1": "<script>alert(1)</script> 8"},
        "needs a street line in words": {**BERLIN, "line1": "8"},
    }
    for said, address in refused.items():
        response = shop.post("/customers", customer(address=address))
        assert response.status_code == 422, said
        assert said in response.text, response.text
    with shop.db() as db:
        assert db.scalars(select(Customer)).all() == []
