"""Issue 15, item 6: the login throttle slows guessing without locking out the real user.

Failures are counted per normalised account and client address (a trailing space or another
case is the same account), the wait grows with each failure instead of a hard lock, the right
password from another address still logs in, memory stays bounded, and X-Forwarded-For counts
only when the connection comes from a configured proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from bot.console.auth import SESSION_COOKIE, LoginThrottle, client_address, trusted_networks
from bot.settings import Settings, SettingsError
from tests.console.logins import console_app, console_crm, console_settings

ATTACKER, USER, PROXY = "203.0.113.66", "198.51.100.7", "10.0.0.2"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.db'}"
    console_crm(url)
    return url


def settings_with(database_url: str, **env: str) -> Settings:
    return Settings.from_env({**console_settings(database_url).to_env(), **env})


class Clock:
    """The throttle's clock, moved by the test: Argon2 on a busy machine must not end a wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, clock: Clock) -> Iterator[Starlette]:
    with console_app(console_settings(database_url)) as app:
        app.state.console.throttle = LoginThrottle(clock=clock)
        yield app


def browser(app: Starlette, address: str) -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address, 40000))


def attempt(browser: TestClient, username: str, password: str, **headers: str) -> int:
    page = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = browser.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers=headers,
    )
    return response.status_code


def test_the_right_password_from_elsewhere_works_after_an_attackers_failures(app: Starlette) -> None:
    attacker = browser(app, ATTACKER)
    statuses = [attempt(attacker, "alex", f"guess-{n}") for n in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert attempt(browser(app, USER), "alex", "alex-pw") == 303


def test_padding_and_case_are_the_same_account(app: Starlette) -> None:
    attacker = browser(app, ATTACKER)
    for name in ("alex", "alex ", " ALEX", "Alex\t", "ａｌｅｘ"):  # the last in full-width letters
        assert attempt(attacker, name, "wrong") == 401
    assert attempt(attacker, "alex  ", "wrong") == 429
    assert attempt(attacker, "mo", "mo-pw") == 303  # what waits is that account, not the address


def test_a_throttled_attempt_says_how_long_to_wait(app: Starlette) -> None:
    attacker = browser(app, ATTACKER)
    for _ in range(5):
        attempt(attacker, "mo", "wrong")
    token = re.search(r'name="csrf_token" value="([^"]+)"', attacker.get("/login").text).group(1)  # type: ignore[union-attr]
    response = attacker.post("/login", data={"username": "mo", "password": "mo-pw", "csrf_token": token})
    assert response.status_code == 429 and SESSION_COOKIE not in response.cookies
    assert response.headers["retry-after"] == "1"
    assert "Too many failed attempts" in response.text


def test_the_wait_ends_and_the_right_password_then_works(app: Starlette, clock: Clock) -> None:
    user = browser(app, USER)
    for _ in range(5):
        attempt(user, "mo", "typo")
    assert attempt(user, "mo", "mo-pw") == 429
    clock.now += 1.01
    assert attempt(user, "mo", "mo-pw") == 303


def test_the_wait_doubles_with_each_failure_up_to_a_cap() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0], cap=300.0)
    waits = []
    for _ in range(16):
        assert throttle.begin("alex", ATTACKER) == 0  # goes ahead, counted as failed until it succeeds
        waits.append(throttle.wait("alex", ATTACKER))
        now[0] += waits[-1]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:10] == [1, 2, 4, 8, 16, 32]
    assert max(waits) == 300 and waits[-1] == 300


def test_parallel_attempts_cannot_outrun_the_throttle() -> None:
    throttle = LoginThrottle(clock=lambda: 1000.0)
    admitted = [throttle.begin("alex", ATTACKER) == 0 for _ in range(20)]  # none has failed yet
    assert admitted.count(True) == 5


def test_one_address_cannot_throttle_the_account_for_everyone() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(500):  # an hour-long attack, waiting out every delay
        now[0] += max(throttle.begin("alex", ATTACKER), 1)
    assert throttle.begin("alex", USER) == 0


def test_many_addresses_slow_the_account_down() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for n in range(200):
        throttle.begin("alex", f"192.0.2.{n}")
    assert throttle.begin("alex", USER) > 0  # a distributed guess is slowed down for everyone...
    now[0] += 3600
    assert throttle.begin("alex", USER) == 0  # ... for a while


def test_one_address_guessing_many_accounts_is_slowed_down() -> None:
    throttle = LoginThrottle(clock=lambda: 1000.0)
    for n in range(40):
        throttle.begin(f"user{n}", ATTACKER)
    assert throttle.begin("alex", ATTACKER) > 0
    assert throttle.begin("alex", USER) == 0


def test_a_success_clears_the_pairs_failures() -> None:
    throttle = LoginThrottle(clock=lambda: 1000.0)
    for _ in range(4):
        throttle.begin("alex", USER)
    assert throttle.begin("alex", USER) == 0
    throttle.succeeded("alex", USER)
    for _ in range(5):
        assert throttle.begin("alex", USER) == 0


def test_memory_stays_bounded() -> None:
    throttle = LoginThrottle(max_entries=100, clock=lambda: 1000.0)
    for n in range(10_000):
        throttle.begin(f"user{n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert throttle.size() <= 300


def test_memory_keeps_the_recent_attackers() -> None:
    now = [1000.0]
    throttle = LoginThrottle(max_entries=100, clock=lambda: now[0])
    for _ in range(6):
        throttle.begin("alex", ATTACKER)
    for n in range(99):  # fewer newcomers than the cap: the attacker is not evicted
        throttle.begin(f"user{n}", f"192.0.2.{n}")
    assert throttle.begin("alex", ATTACKER) > 0


def test_a_long_username_is_refused_with_a_message(app: Starlette) -> None:
    status = attempt(browser(app, USER), "a" * 61, "whatever")
    assert status == 400
    page = browser(app, USER)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get("/login").text).group(1)  # type: ignore[union-attr]
    response = page.post("/login", data={"username": "a" * 61, "password": "x", "csrf_token": token})
    assert "at most 60 characters" in response.text


def test_forwarded_for_is_ignored_from_an_untrusted_peer(app: Starlette) -> None:
    attacker = browser(app, ATTACKER)
    statuses = [attempt(attacker, "ada", "wrong", **{"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(6)]
    assert statuses[-1] == 429  # a made-up hop per attempt does not make a new client


def test_forwarded_for_is_honoured_from_a_trusted_proxy(database_url: str, clock: Clock) -> None:
    settings = settings_with(database_url, CONSOLE_TRUSTED_PROXIES=f"{PROXY},172.16.0.0/12")
    with console_app(settings) as app:
        app.state.console.throttle = LoginThrottle(clock=clock)
        proxy = browser(app, PROXY)
        for _ in range(5):
            assert attempt(proxy, "ada", "wrong", **{"X-Forwarded-For": f"1.1.1.1, {ATTACKER}"}) == 401
        assert attempt(proxy, "ada", "wrong", **{"X-Forwarded-For": ATTACKER}) == 429
        # the real user behind the same proxy (and a second trusted hop) is another client
        behind = {"X-Forwarded-For": f"{ATTACKER}, {USER}, 172.20.0.9"}
        assert attempt(proxy, "ada", "ada-pw", **behind) == 303


def test_client_address_takes_the_rightmost_untrusted_hop() -> None:
    scope = {
        "type": "http",
        "client": (PROXY, 1),
        "headers": [(b"x-forwarded-for", f"6.6.6.6, {USER}, 172.20.0.9".encode())],
    }
    trusted = trusted_networks(f"{PROXY},172.16.0.0/12")
    assert client_address(Request(scope), trusted) == USER
    assert client_address(Request(scope), ()) == PROXY
    scope["client"] = (ATTACKER, 1)
    assert client_address(Request(scope), trusted) == ATTACKER


def test_a_bad_proxy_setting_stops_the_start(database_url: str) -> None:
    with pytest.raises(SettingsError, match="CONSOLE_TRUSTED_PROXIES"):
        settings_with(database_url, CONSOLE_TRUSTED_PROXIES="10.0.0.0/8,proxy.example")


def test_addresses_in_one_ipv6_network_are_one_client() -> None:
    throttle = LoginThrottle(clock=lambda: 1000.0)
    for n in range(5):  # one home or host gets a whole /64: each address is not another person
        throttle.begin("alex", f"2001:db8::{n + 1}")
    assert throttle.begin("alex", "2001:db8::ffff") > 0
    assert throttle.begin("alex", "2001:db8:0:1::1") == 0
