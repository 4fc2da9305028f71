"""Integrations in a real browser against a real gateway (headless Chromium): an admin makes a
write key and sees it once; the shop's system then writes a customer through the gateway's
/api/v1 with it; the admin revokes it in the confirmation dialog and the key is refused at once.
The page has no serious accessibility violation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.crm.models import AuditLog, Customer
from tests.a11y.axe import serious_violations
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_desk_browser import log_in
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def send_customer(stack: RunningGateway, key: str) -> httpx.Response:
    occurred = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    return httpx.post(
        f"{stack.url}/api/v1/customers",
        json={
            "external_id": "shop-42",
            "occurred_at": occurred,
            "first_name": "Ulla",
            "email": "u@example.com",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_an_admin_makes_a_key_sees_it_once_and_revokes_it(stack: RunningGateway, page: Page) -> None:
    log_in(page, stack, "ada")
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    assert serious_violations(page) == []

    page.get_by_label(re.compile("^Name")).fill("shop backend")
    page.get_by_label("read and write").check()
    page.get_by_role("button", name="Make the key").click()

    shown = page.get_by_test_id("shown-key")
    expect(shown).to_contain_text("shown only this once")
    key = page.locator("#new-key").inner_text()
    assert re.fullmatch(r"clk_[A-Za-z0-9_-]{43}", key)
    assert serious_violations(page) == []
    page.reload()
    expect(page.get_by_text("A key is shown only once")).to_be_visible()
    assert key not in page.content()
    expect(page.locator("tr.live")).to_contain_text(key[:12])

    written = send_customer(stack, key)
    assert written.status_code == 201, written.text
    with stack.crm() as crm:
        assert (
            crm.scalars(select(Customer.first_name).where(Customer.external_id == "shop-42")).one() == "Ulla"
        )
        assert (
            crm.scalars(select(AuditLog.actor).where(AuditLog.action == "api_created")).one()
            == "api:shop backend"
        )
    page.reload()
    expect(page.locator("tr.live td").nth(4)).not_to_have_text("never")  # last use shown

    page.get_by_role("button", name="Revoke shop backend").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Every request with it is refused from now on")
    dialog.get_by_role("button", name="Yes, revoke it").click()
    expect(page.get_by_text("Revoked. Requests with that key are refused from now on.")).to_be_visible()

    refused = send_customer(stack, key)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
