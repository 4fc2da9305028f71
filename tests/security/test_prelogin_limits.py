"""Issue 15, item 7: anyone can post the login form, so it is read with small limits.

Today Starlette's defaults let an anonymous client make the console parse up to 1 MB per field
and 1,000 fields (and files) before the form's token is even checked. The login form has three
short fields: a body over a few KB is refused unread (413), and a form with files, too many
fields or an oversized field is refused (400), each with the login page and a plain message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from bot.console.auth import SESSION_COOKIE
from tests.console.logins import console_app, console_crm, console_settings


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.db'}"
    console_crm(url)
    return url


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with console_app(console_settings(database_url)) as app:
        yield TestClient(app, follow_redirects=False)


def token(client: TestClient) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]


def test_the_login_form_still_works(client: TestClient) -> None:
    data = {"username": "alex", "password": "alex-pw", "csrf_token": token(client)}
    assert client.post("/login", data=data).status_code == 303


def test_a_large_body_is_refused_by_its_declared_length(client: TestClient) -> None:
    data = {"username": "alex", "password": "x" * 100_000, "csrf_token": token(client)}
    response = client.post("/login", data=data)
    assert response.status_code == 413
    assert "too large" in response.text and 'name="csrf_token"' in response.text  # the form again
    assert SESSION_COOKIE not in response.cookies


async def test_a_large_body_without_a_length_is_refused_while_streaming(database_url: str) -> None:
    pulled, sent = 0, []

    async def receive() -> Message:  # a client streaming 1 MB in 1 KB chunks, no Content-Length
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"password=" + b"x" * 1024, "more_body": pulled < 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/login",
        "raw_path": b"/login",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("198.51.100.7", 40000),
        "server": ("testserver", 80),
    }
    with console_app(console_settings(database_url)) as app:
        await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled <= 5  # it stopped reading after about 4 KB


@pytest.mark.parametrize(
    ("what", "build"),
    [
        ("many fields", lambda t: {"csrf_token": t, **{f"f{n}": "1" for n in range(100)}}),
        ("a long field", lambda t: {"csrf_token": t, "username": "alex", "password": "p" * 3000}),
    ],
)
def test_a_form_that_is_not_a_login_is_refused(client: TestClient, what: str, build: object) -> None:
    data = build(token(client))  # type: ignore[operator]
    response = client.post("/login", data=data)
    assert response.status_code == 400, what
    assert "could not be read" in response.text


def test_a_file_is_refused(client: TestClient) -> None:
    response = client.post(
        "/login",
        data={"csrf_token": token(client), "username": "alex", "password": "alex-pw"},
        files={"avatar": ("a.txt", b"hello", "text/plain")},
    )
    assert response.status_code == 400 and SESSION_COOKIE not in response.cookies


def test_the_logout_form_has_the_same_limits(client: TestClient) -> None:
    client.post("/login", data={"username": "alex", "password": "alex-pw", "csrf_token": token(client)})
    response = client.post("/logout", data={"csrf_token": "x", "padding": "y" * 100_000})
    assert response.status_code == 413
