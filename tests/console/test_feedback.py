"""The Feedback page in the console: what the bot records (feedback, a rating's comment, an exit
answer) lands on it, grouped by theme; agents, leads and admins work it and marketers are refused;
every form needs the CSRF token; a stale form, an unknown item and a bad message are refused with a
clear message and change nothing; and telling the customer queues one service message, however
often the button is pressed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.actions.feedback import ActionRecordFeedback, ActionRecordRating
from bot.actions.retention import ActionFinishCancellation
from bot.crm import feedback
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, Delivery, FeedbackItem, FeedbackSource, FeedbackState, Role
from bot.settings import Settings
from tests.actions.conftest import make_tracker, run_action, use_database
from tests.console.logins import add_console_users, console_app, console_settings, csrf_of, login
from tests.factories import make_customer

PEOPLE = {"ada": Role.ADMIN, "alex": Role.AGENT, "sam": Role.AGENT, "lee": Role.LEAD, "mo": Role.MARKETER}
HOSTILE = "<script>alert('x')</script> the <b>grinder</b> is loud"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        add_console_users(session, PEOPLE)
        session.commit()
    engine.dispose()
    return console_settings(url)


@pytest.fixture
def crm(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[object]:
    with console_app(settings) as console:
        yield console


def client_for(app: object, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    return client, login(client, username)


def file_words(crm: Session, words: str = "The courier left my parcel in the rain") -> FeedbackItem:
    customer = make_customer(crm, first_name="Anna")
    item = feedback.file_feedback(
        session=crm, customer_id=customer.id, source=FeedbackSource.FEEDBACK, text=words
    )
    crm.commit()
    assert item is not None
    return item


def agent_id(crm: Session, username: str) -> int:
    found = crm.scalar(select(Agent.id).where(Agent.username == username))
    assert found is not None
    return found


def form_of(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (its CSRF token, version and history seen)."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form is not None, f"no form for {action}"
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.group(1)))


def reread(crm: Session, item_id: int) -> FeedbackItem:
    crm.expire_all()
    return crm.get_one(FeedbackItem, item_id)


def section(page: str, theme: str) -> str:
    """The part of the page that lists one theme."""
    start = page.index(f'<section class="theme" id="theme-{theme}"')
    return page[start : page.index("</section>", start)]


def deliveries(crm: Session) -> int:
    return crm.scalar(select(func.count(Delivery.id))) or 0


def test_what_the_bot_records_lands_on_the_page_grouped_by_theme(
    app: object, settings: Settings, crm: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, settings.database_url)
    make_customer(crm, first_name="Dana", web_id="dana")
    make_customer(crm, first_name="Eli", web_id="eli")
    make_customer(crm, first_name="Fay", web_id="fay")
    crm.commit()

    async def chat() -> None:
        rated = make_tracker("web:dana", intent="rate", entities=[{"entity": "rating", "value": "1"}])
        await run_action(ActionRecordRating(), rated)
        await run_action(ActionRecordFeedback(), make_tracker("web:dana", text="nobody answered my emails"))
        free = make_tracker(
            "web:eli", intent="give_feedback", text="feedback: the app logs me out at checkout"
        )
        await run_action(ActionRecordFeedback(), free)
        leaving = make_tracker(
            "web:fay", text="moving abroad", slots={"exit_answer": "Moving abroad next month"}
        )
        await run_action(ActionFinishCancellation(), leaving)

    asyncio.run(chat())
    client, _ = client_for(app, "alex")
    page = client.get("/feedback")
    assert page.status_code == 200
    assert "nobody answered my emails" in page.text and "the app logs me out at checkout" in page.text
    assert "nobody answered my emails" in section(page.text, "service")
    assert "the app logs me out at checkout" in section(page.text, "technical")
    assert "Moving abroad next month" in section(page.text, "moving")
    assert "website and app (1)" in page.text  # the theme's heading in words, with its count
    assert "comment on a rating" in page.text and "1/5" in page.text
    only_service = client.get("/feedback?theme=service").text
    assert "nobody answered my emails" in only_service and "logs me out" not in only_service


def test_agents_leads_and_admins_use_the_page_marketers_are_refused(app: object, crm: Session) -> None:
    item = file_words(crm)
    for name in ("ada", "alex", "lee"):
        client, _ = client_for(app, name)
        assert client.get("/feedback").status_code == 200, name
        assert 'href="/feedback">Feedback</a>' in client.get("/").text, name
    marketer, csrf = client_for(app, "mo")
    refused = [
        marketer.get("/feedback"),
        marketer.get(f"/feedback/{item.id}"),
        marketer.post(f"/feedback/{item.id}/take", data={"csrf_token": csrf, "version": str(item.version)}),
        marketer.post(f"/feedback/{item.id}/tell", data={"csrf_token": csrf, "message": "We changed it"}),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert "Your role does not allow this page." in refused[0].text
    assert 'href="/feedback"' not in marketer.get("/").text
    assert reread(crm, item.id).owner_id is None and deliveries(crm) == 0


def test_every_form_needs_the_csrf_token(app: object, crm: Session) -> None:
    item = file_words(crm)
    client, _ = client_for(app, "alex")
    for path in ("take", "assign", "state", "tell"):
        response = client.post(f"/feedback/{item.id}/{path}", data={"csrf_token": "forged", "message": "x"})
        assert response.status_code == 403, path
    assert reread(crm, item.id).version == item.version


def test_assign_to_me_then_tell_the_customer_once(app: object, crm: Session) -> None:
    item = file_words(crm)
    client, _ = client_for(app, "alex")
    page = client.get(f"/feedback/{item.id}").text
    taken = client.post(f"/feedback/{item.id}/take", data=form_of(page, f"/feedback/{item.id}/take"))
    assert taken.status_code == 303 and taken.headers["location"] == f"/feedback/{item.id}?done=taken"
    page = client.get(taken.headers["location"]).text
    assert "The feedback is yours now." in page and "owner Alex (you)" in page
    assert reread(crm, item.id).state is FeedbackState.IN_PROGRESS

    fields = form_of(page, f"/feedback/{item.id}/tell")
    empty = client.post(f"/feedback/{item.id}/tell", data={**fields, "message": "   "})
    assert empty.status_code == 400 and "Write the message the customer will read." in empty.text
    too_long = client.post(f"/feedback/{item.id}/tell", data={**fields, "message": "x" * 1001})
    assert too_long.status_code == 400 and "at most 1,000" in too_long.text
    assert deliveries(crm) == 0

    message = "Hi Anna, our couriers now <b>ring first</b> and never leave parcels outside."
    warned = client.post(f"/feedback/{item.id}/tell", data={**fields, "message": message})
    assert warned.status_code == 422 and 'id="markup-warning"' in warned.text
    assert "HTML tags such as &lt;b&gt;" in warned.text
    assert "our couriers now &lt;b&gt;ring first&lt;/b&gt;" in warned.text  # kept, shown as text
    assert deliveries(crm) == 0

    told = client.post(f"/feedback/{item.id}/tell", data={**fields, "message": message, "markup_ok": "yes"})
    assert told.status_code == 303
    again = client.post(f"/feedback/{item.id}/tell", data={**fields, "message": message, "markup_ok": "yes"})
    assert again.status_code == 409 and "already told, by Alex" in again.text  # the double click
    crm.expire_all()
    sent = crm.scalars(select(Delivery)).all()
    assert [d.payload["campaign_text"] for d in sent] == [message]
    after = reread(crm, item.id)
    assert (after.customer_told_by, after.state) == (agent_id(crm, "alex"), FeedbackState.DONE)
    page = client.get(f"/feedback/{item.id}").text
    assert "Told by Alex" in page and "the message is waiting" in page
    assert 'id="tell-form"' not in page


def test_a_stale_form_is_refused_with_what_changed(app: object, crm: Session) -> None:
    item = file_words(crm)
    alex, _ = client_for(app, "alex")
    lee, _ = client_for(app, "lee")
    alex_page = alex.get(f"/feedback/{item.id}").text
    lee_page = lee.get(f"/feedback/{item.id}").text
    assert (
        lee.post(f"/feedback/{item.id}/take", data=form_of(lee_page, f"/feedback/{item.id}/take")).status_code
        == 303
    )
    stale = alex.post(f"/feedback/{item.id}/take", data=form_of(alex_page, f"/feedback/{item.id}/take"))
    assert stale.status_code == 409
    assert "Someone changed this feedback after you opened it, so nothing was saved." in stale.text
    assert "Lee: owner nobody → Lee" in stale.text and "Lee: new → in progress" in stale.text
    assert reread(crm, item.id).owner_id == agent_id(crm, "lee")


def test_someone_elses_item_and_unknown_items_are_refused(app: object, crm: Session) -> None:
    item = file_words(crm)
    alex, _ = client_for(app, "alex")
    sam, sam_csrf = client_for(app, "sam")
    page = alex.get(f"/feedback/{item.id}").text
    alex.post(f"/feedback/{item.id}/take", data=form_of(page, f"/feedback/{item.id}/take"))
    version = str(reread(crm, item.id).version)
    refused = sam.post(
        f"/feedback/{item.id}/state", data={"csrf_token": sam_csrf, "version": version, "state": "done"}
    )
    assert refused.status_code == 409 and "Someone else owns this feedback" in refused.text
    bad_state = alex.post(
        f"/feedback/{item.id}/state",
        data={"csrf_token": csrf_of(alex), "version": version, "state": "closed"},
    )
    assert bad_state.status_code == 400 and "Choose the state" in bad_state.text
    assert reread(crm, item.id).state is FeedbackState.IN_PROGRESS
    assert sam.get("/feedback/999999").status_code == 404
    missing = sam.post("/feedback/999999/take", data={"csrf_token": sam_csrf})
    assert missing.status_code == 404 and "There is no feedback item #999999." in missing.text


def test_the_customers_words_are_shown_as_text(app: object, crm: Session) -> None:
    item = file_words(crm, HOSTILE)
    client, _ = client_for(app, "alex")
    for page in (client.get("/feedback").text, client.get(f"/feedback/{item.id}").text):
        assert "<script>alert" not in page and "<b>grinder</b>" not in page
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
