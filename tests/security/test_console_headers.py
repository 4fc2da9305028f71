"""Issue 15, item 7: console pages carry a Content-Security-Policy and may not be framed.

Every console response (pages, redirects, refusals, JSON, static files) says: scripts, styles and
connections only from the console's own origin, no inline script, no framing (`frame-ancestors
'none'` and `X-Frame-Options: DENY`), no MIME sniffing, and a same-origin referrer; pages are
never cached (`Cache-Control: no-store`). Headless Chromium then proves the pages still work under
that policy: the login, the queue's script and its live websocket, the admin pages, with no CSP
violation and no console error; and a foreign page cannot frame the login.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect

from tests.browser import browser
from tests.console.conftest import ConsoleClient, desk_stack
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "rasa"]

pytestmark = pytest.mark.timeout(120)

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
  e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def directives(policy: str) -> dict[str, str]:
    pairs = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: rest for name, rest in pairs}


def assert_protected(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    policy = directives(response.headers.get("content-security-policy", ""))
    assert policy.get("default-src") == "'self'", where
    assert policy.get("frame-ancestors") == "'none'", where
    assert "unsafe-inline" not in policy.get("script-src", "'self'"), where
    assert policy.get("object-src") == "'none'" and policy.get("base-uri") == "'none'", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "same-origin", where


def test_every_kind_of_console_response_has_the_headers(stack: RunningGateway) -> None:
    anonymous = httpx.Client(base_url=f"{stack.url}/console", follow_redirects=False, timeout=15)
    ada, alex = ConsoleClient(stack, "ada").login(), ConsoleClient(stack, "alex").login()
    try:
        responses = [
            anonymous.get("/login"),
            anonymous.get("/queue"),  # a redirect to the login
            anonymous.post("/login", data={"username": "x", "password": "y", "csrf_token": "z"}),
            anonymous.get("/static/console.css"),
            anonymous.get("/static/desk.js"),
            alex.http.get("/"),
            alex.http.get("/queue"),
            alex.http.get("/queue.json"),
            alex.http.get("/users"),  # refused: not an admin
            ada.http.get("/users"),
            ada.http.get("/canned"),
            ada.http.get("/campaigns"),
            ada.http.get("/reports"),
        ]
        assert {r.status_code for r in responses} >= {200, 303, 403}
        for response in responses:
            assert_protected(response)
            if response.headers["content-type"].startswith("text/html"):
                assert response.headers.get("cache-control") == "no-store", response.request.url
    finally:
        for client in (anonymous, ada.http, alex.http):
            client.close()


def test_the_shop_page_keeps_its_own_policy(stack: RunningGateway) -> None:
    shop = httpx.get(f"{stack.url}/demo", timeout=15)
    assert "nonce-" in shop.headers["content-security-policy"]  # the console's policy is the console's


@pytest.fixture
def watched(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page that records console errors, uncaught exceptions and CSP violations."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)
        elif message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)  # failed loads are told apart below, by their URL

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):  # none is served
            problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", on_response)
    yield page, problems
    context.close()


def log_in(page: Page, stack: RunningGateway, username: str) -> None:
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def violations(page: Page) -> list[Any]:
    return list(page.evaluate("() => window.__violations"))


def test_the_console_works_under_its_policy(stack: RunningGateway, watched: tuple[Page, list[str]]) -> None:
    page, problems = watched
    log_in(page, stack, "alex")
    assert page.evaluate("() => getComputedStyle(document.body).margin") != "8px"  # console.css applied
    page.goto(f"{stack.url}/console/queue")
    expect(page.locator("#desk.is-live")).to_be_attached()  # desk.js ran and its websocket connected
    assert violations(page) == [] and problems == []
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(page, stack, "ada")
    for path in ("/users", "/canned", "/campaigns", "/reports"):
        page.goto(f"{stack.url}/console{path}")
        assert violations(page) == [], path
    assert problems == []


def test_an_inline_script_would_be_refused(stack: RunningGateway, watched: tuple[Page, list[str]]) -> None:
    """The policy is in force, not only sent: a script injected into a console page does not run."""
    page, problems = watched
    page.goto(f"{stack.url}/console/login")
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__ran = 1'; document.body.appendChild(s); }"""
    )
    assert page.evaluate("() => window.__ran") is None
    assert any("script-src" in v for v in violations(page))


def test_a_foreign_page_cannot_frame_the_console(
    stack: RunningGateway, watched: tuple[Page, list[str]]
) -> None:
    page, problems = watched
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text, timeout=15_000):
        page.set_content(f'<iframe src="{stack.url}/console/login" width="600" height="400"></iframe>')
    frame = page.frames[-1]
    assert frame.locator("form.login").count() == 0
