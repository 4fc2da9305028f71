"""The NLU review page through the real gateway and console, on SQLite and PostgreSQL: only admins
may see it, decide or export; every form needs the session's CSRF token; a correction leaves the
list and reaches a new, masked export file exactly once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from sqlalchemy import select

from bot.crm.models import NluReview
from tests.console.conftest import ConsoleClient
from tests.crm.rasa_tracker import a_misread_message as misread
from tests.gateway.fixtures import rasa
from tests.gateway.standin_rasa import StandInRasa
from tests.security.console_stack import Stack, database_url, gateway_with_console

__all__ = ["database_url", "rasa"]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def stack(tmp_path: Path, database_url: str, rasa: StandInRasa) -> Iterator[Stack]:
    with gateway_with_console(tmp_path, database_url, rasa) as (gateway, _):
        yield gateway


@pytest.fixture
def clients(stack: Stack) -> Iterator[dict[str, ConsoleClient]]:
    logged_in = {name: ConsoleClient(stack, name).login() for name in ("ada", "alex", "mo")}
    yield logged_in
    for client in logged_in.values():
        client.close()


def a_misread_message(stack: Stack) -> int:
    with stack.crm() as session:
        return misread(session, stack.settings.rasa_tracker_db)


def review_id(stack: Stack, message_id: int) -> int:
    with stack.crm() as session:
        found = session.scalar(select(NluReview.id).where(NluReview.message_id == message_id))
        assert found is not None, "the message was not collected for review"
        return found


def exports(stack: Stack) -> list[Path]:
    folder = stack.settings.nlu_review_dir
    return sorted(folder.iterdir()) if folder.exists() else []


def test_only_admins_may_see_decide_or_export(stack: Stack, clients: dict[str, ConsoleClient]) -> None:
    message_id = a_misread_message(stack)
    page = clients["ada"].http.get("/nlu-review")
    assert page.status_code == 200
    assert 'href="/console/nlu-review"' in clients["ada"].http.get("/").text
    item = review_id(stack, message_id)

    for name in ("alex", "mo"):
        client = clients[name]
        refused = [
            client.http.get("/nlu-review"),
            client.post(f"/nlu-review/{item}/decision", {"intent": "complain"}, as_json=False),
            client.post(f"/nlu-review/{item}/reopen", as_json=False),
            client.post("/nlu-review/export", as_json=False),
        ]
        assert [r.status_code for r in refused] == [403] * 4, name
        assert "Your role does not allow this page." in refused[0].text
        assert "nlu-review" not in client.http.get("/").text  # no link in their menu
    with stack.crm() as session:
        assert session.get_one(NluReview, item).decision is None
    assert exports(stack) == []


def test_forms_without_the_sessions_csrf_token_are_refused(
    stack: Stack, clients: dict[str, ConsoleClient]
) -> None:
    ada = clients["ada"]
    message_id = a_misread_message(stack)
    ada.http.get("/nlu-review")
    item = review_id(stack, message_id)
    other = clients["alex"].csrf  # a real token, of another session

    for token in ("", "forged", other):
        decision = ada.post(f"/nlu-review/{item}/decision", {"intent": "complain"}, as_json=False, csrf=token)
        export = ada.post("/nlu-review/export", as_json=False, csrf=token)
        assert (decision.status_code, export.status_code) == (403, 403), token
    with stack.crm() as session:
        assert session.get_one(NluReview, item).decision is None
    assert exports(stack) == []


def test_a_correction_leaves_the_list_and_is_exported_masked_once(
    stack: Stack, clients: dict[str, ConsoleClient]
) -> None:
    ada = clients["ada"]
    message_id = a_misread_message(stack)
    page = ada.http.get("/nlu-review").text
    assert "&lt;script&gt;window.x=1&lt;/script&gt;" in page and "<script>window.x" not in page
    assert "Hi! How can I help?" in page  # the conversation around it
    assert "not understood" in page and "give_feedback" in page
    item = review_id(stack, message_id)

    refused = ada.post(f"/nlu-review/{item}/decision", {"intent": "EXTERNAL_checkin"}, as_json=False)
    assert refused.status_code == 422 and "not an intent of the assistant" in refused.text
    done = ada.post(f"/nlu-review/{item}/decision", {"intent": "complain"}, as_json=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/nlu-review?done=corrected"
    after = ada.http.get("/nlu-review?done=corrected").text
    assert "Corrected." in after and f'id="review-{item}"' not in after
    assert f'id="review-{item}"' in ada.http.get("/nlu-review?tab=reviewed").text

    exported = ada.post("/nlu-review/export", as_json=False)
    assert exported.status_code == 303
    notice = ada.http.get(exported.headers["location"].removeprefix("/console")).text
    (written,) = exports(stack)
    assert re.fullmatch(r"review-\d{4}-\d{2}-\d{2}-1\.yml", written.name)
    assert f"Wrote 1 example(s) to {written}" in notice
    content = YAML(typ="safe").load(written.read_text())
    assert content["nlu"] == [
        {
            "intent": "complain",
            "examples": "- <script>window.x=1</script> it broke, I'm Anna, [anna@example.com](email)\n",
        }
    ]

    again = ada.post("/nlu-review/export", as_json=False)
    assert "Nothing new to export" in ada.http.get(again.headers["location"].removeprefix("/console")).text
    assert exports(stack) == [written]
    late = ada.post(f"/nlu-review/{item}/decision", {"intent": "out_of_scope"}, as_json=False)
    assert late.status_code == 409 and written.name in late.text
