"""Visitor tokens prove a web visitor's id; link payloads attach a Telegram chat to a customer."""

from __future__ import annotations

import re
import time

from bot.gateway.tokens import customer_of_link, link_payload, new_visitor, visitor_of

KEY = "k" * 32


def test_a_visitor_token_proves_its_visitor_and_nothing_else() -> None:
    visitor_id, token = new_visitor(KEY)
    assert visitor_of(KEY, token) == visitor_id
    assert visitor_of("another-key" * 3, token) is None
    # Tamper with the signature's first character: the last one of a base64 text may carry only
    # padding bits, so changing it can leave the signature's bytes (and its validity) unchanged.
    payload, _, signature = token.rpartition(".")
    forged = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert signature and visitor_of(KEY, forged) is None
    assert (
        visitor_of(KEY, None) is None and visitor_of(KEY, "") is None and visitor_of(KEY, "x" * 500) is None
    )
    assert new_visitor(KEY)[0] != visitor_id


def test_a_signed_value_that_is_not_a_visitor_id_is_refused() -> None:
    from itsdangerous import URLSafeSerializer

    from bot.gateway.tokens import VISITOR_SALT

    assert visitor_of(KEY, URLSafeSerializer(KEY, salt=VISITOR_SALT).dumps("demo-0001")) is None


def test_a_link_payload_fits_telegram_and_names_its_customer() -> None:
    payload = link_payload(KEY, 123_456_789)
    assert len(payload) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", payload)
    assert customer_of_link(KEY, payload) == 123_456_789


def test_forged_expired_or_foreign_link_payloads_are_refused() -> None:
    payload = link_payload(KEY, 42)
    forged = payload.replace("link-42-", "link-43-")
    assert customer_of_link(KEY, forged) is None
    assert customer_of_link("another-key" * 3, payload) is None
    assert customer_of_link(KEY, payload, now=time.time() + 8 * 24 * 3600) is None
    assert customer_of_link(KEY, link_payload(KEY, 42, now=time.time() - 8 * 24 * 3600)) is None
    for junk in ("", "link-", "link-x-y-z", "start", "link-1-zz"):
        assert customer_of_link(KEY, junk) is None
