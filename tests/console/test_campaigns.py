"""The campaign pages: roles, CSRF, validation a marketer can act on, preview, schedule, pause,
cancel, editing until sending starts, and each delivery's status with its reason."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.consent import set_consent
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Campaign,
    CampaignStatus,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
    OutreachKind,
    Segment,
)
from bot.settings import Settings
from scheduler.campaigns.fanout import fan_out
from tests.console.logins import add_console_users, console_app, console_settings, login
from tests.factories import make_customer


@pytest.fixture(scope="module")
def crm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated CRM with three console users and three customers, copied for each test."""
    path = tmp_path_factory.mktemp("campaign-crm") / "crm.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        add_console_users(session)
        anna = make_customer(
            session, first_name="Anna", last_name="Berger", segment=Segment.MVC, tags=["beans"]
        )
        ben = make_customer(session, first_name="Ben", segment=Segment.BZ, tags=["beans"])
        make_customer(session, first_name="Chloé", segment=Segment.MVC)  # never asked: no marketing
        for customer, granted in ((anna, True), (ben, False)):
            set_consent(
                session=session,
                customer=customer,
                purpose=ConsentPurpose.MARKETING,
                granted=granted,
                source="t",
            )
        session.commit()
    engine.dispose()
    return path


@pytest.fixture
def settings(tmp_path: Path, crm_template: Path) -> Settings:
    shutil.copy(crm_template, tmp_path / "crm.db")
    return console_settings(f"sqlite:///{tmp_path / 'crm.db'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with console_app(settings) as app:
        yield TestClient(app, follow_redirects=False)


def crm(settings: Settings) -> Session:
    return Session(make_engine(settings.database_url), expire_on_commit=False)


def tomorrow() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()


def campaign_form(csrf: str, intent: str = "schedule", **overrides: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "intent": intent,
        "name": "Winter roast",
        "message": "Hi {first_name}, our winter roast is here!",
        "segments": ["MVC"],
        "tags": "",
        "last_contact_days_min": "",
        "last_contact_days_max": "",
        "churn_risk_min": "",
        "has_open_complaint": "",
        "date": tomorrow(),
        "time": "10:00",
        "every": "once",
        "button_1": "Tell me more",
        "button_2": "",
        **overrides,
    }


def campaigns(settings: Settings) -> list[Campaign]:
    with crm(settings) as session:
        return list(session.scalars(select(Campaign).order_by(Campaign.id)))


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/campaigns", "/campaigns/new", "/campaigns/1"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].endswith("/login")


def test_an_agent_is_refused_every_campaign_page(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "alex")
    for path in ("/campaigns", "/campaigns/new", "/campaigns/1", "/campaigns/1/edit"):
        assert client.get(path).status_code == 403, path
    assert client.post("/campaigns/new", data=campaign_form(csrf)).status_code == 403
    assert client.post("/campaigns/1/status", data={"csrf_token": csrf, "action": "pause"}).status_code == 403
    assert campaigns(settings) == []
    assert "Campaigns" not in client.get("/").text


def test_preview_shows_the_audience_size_and_the_message_for_a_sample_customer(
    client: TestClient, settings: Settings
) -> None:
    csrf = login(client, "mo")
    response = client.post("/campaigns/new", data=campaign_form(csrf, "preview"))
    assert response.status_code == 200
    assert re.search(r'data-testid="audience-size">2<', response.text)  # Anna and Chloé are MVC
    assert re.search(r'data-testid="consenting">1<', response.text)  # only Anna agreed to marketing
    assert "As <strong>Anna Berger</strong>" in response.text
    assert "Hi Anna, our winter roast is here!" in response.text
    assert 'value="Winter roast"' in response.text  # the form comes back filled in
    assert campaigns(settings) == []  # a preview stores nothing
    narrowed = client.post("/campaigns/new", data=campaign_form(csrf, "preview", tags="beans", segments=[]))
    assert re.search(r'data-testid="audience-size">2<', narrowed.text)
    empty = client.post("/campaigns/new", data=campaign_form(csrf, "preview", segments=["BZ"], tags="vip"))
    assert "No customer matches this audience" in empty.text


def test_a_marketer_schedules_a_campaign_and_sees_it_listed(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    response = client.post(
        "/campaigns/new",
        data=campaign_form(
            csrf, has_open_complaint="no", churn_risk_min="0.2", every="week", button_2="No thanks"
        ),
    )
    assert response.status_code == 303 and response.headers["location"] == "/campaigns/1?done=scheduled"
    [campaign] = campaigns(settings)
    assert campaign.status is CampaignStatus.SCHEDULED
    assert campaign.audience == {"segments": ["MVC"], "churn_risk_min": 0.2, "has_open_complaint": False}
    assert campaign.schedule == {"date": tomorrow(), "time": "10:00", "every": "week"}
    assert campaign.buttons == [{"title": "Tell me more"}, {"title": "No thanks"}]
    page = client.get(response.headers["location"]).text
    assert "Scheduled. The scheduler picks it up at its next run." in page
    assert "Nothing queued yet" in page
    listing = client.get("/campaigns").text
    assert "Winter roast" in listing and "scheduled" in listing


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "  "}, "name", "Give the campaign a name"),
        ({"message": "Hi {name}!"}, "message", "{name} is not a placeholder we can fill: use {first_name}"),
        ({"message": "Hi {first_name"}, "message", "A placeholder is not closed"),
        ({"message": ""}, "message", "Write the message customers will read."),
        ({"message": "x" * 1001}, "message", "The message is 1,001 characters long: at most 1,000."),
        ({"date": "2020-01-01"}, "date", "This moment has already passed everywhere"),
        ({"date": ""}, "date", "Choose the day of the first send"),
        ({"churn_risk_min": "high"}, "churn_risk_min", "Write a churn risk between 0 and 1"),
        ({"last_contact_days_min": "-3"}, "last_contact_days_min", "Write a whole number of days"),
        ({"segments": ["VIP"]}, "segments", "Choose a segment from the list (VIP is not one)."),
        ({"button_1": "x" * 41}, "button_1", "A button label has at most 40 characters."),
    ],
)
@pytest.mark.parametrize("intent", ["preview", "schedule"])
def test_bad_input_gets_a_clear_message_and_stores_nothing(
    client: TestClient, settings: Settings, overrides: dict[str, Any], field: str, message: str, intent: str
) -> None:
    """Issue 19: the mistake is shown beside its field, in a marketer's words (no raw field names)."""
    csrf = login(client, "mo")
    response = client.post("/campaigns/new", data=campaign_form(csrf, intent, **overrides))
    assert response.status_code == 422
    shown = re.search(rf'<p class="field-error" id="err-{field}">(.*?)</p>', response.text, re.S)
    assert shown is not None and message in html.unescape(shown.group(1))
    assert f'aria-describedby="err-{field}"' in response.text
    assert campaigns(settings) == []


def test_every_mistake_is_shown_at_once_with_cross_field_checks(
    client: TestClient, settings: Settings
) -> None:
    """Issue 19: all errors together, and a minimum above the maximum is an error, not an empty audience."""
    csrf = login(client, "mo")
    form = campaign_form(
        csrf, name="", message="Hi {nom}", last_contact_days_min="30", last_contact_days_max="7", time="25"
    )
    response = client.post("/campaigns/new", data=form)
    assert response.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="err-(\w+)">(.*?)</p>', response.text, re.S))
    assert set(errors) == {"name", "message", "last_contact_days_max", "time"}
    assert "nobody can match both" in html.unescape(errors["last_contact_days_max"])
    assert "Please fix these 4 things" in response.text
    assert campaigns(settings) == []


def test_send_now_and_cancel_ask_first_saying_how_many_customers(
    client: TestClient, settings: Settings
) -> None:
    """Issue 19: nothing destructive by accident; without JavaScript the question is a second page."""
    csrf = login(client, "mo")
    asked = client.post("/campaigns/new", data=campaign_form(csrf, "now", segments=[]))
    assert asked.status_code == 200 and campaigns(settings) == []  # nothing stored, nothing sent
    consequence = re.search(r'data-testid="consequence">(.*?)</p>', asked.text, re.S)
    assert consequence is not None and "at the next minute to 1 customer (" in html.unescape(
        consequence.group(1)
    )
    assert 'name="confirmed" value="yes"' in asked.text and 'name="intent" value="now"' in asked.text
    client.post("/campaigns/new", data=campaign_form(csrf, "draft"))
    cancel = client.post("/campaigns/1/status", data={"csrf_token": csrf, "action": "cancel"})
    assert cancel.status_code == 200 and "Cancel Winter roast?" in html.unescape(cancel.text)
    assert "This cannot be undone." in cancel.text
    assert campaigns(settings)[0].status is CampaignStatus.DRAFT
    page = client.get("/campaigns/1").text
    assert 'data-confirm="Cancel Winter roast?' in page and 'data-confirm="Schedule Winter roast?' in page


def test_markup_customers_would_see_literally_is_warned_about(client: TestClient, settings: Settings) -> None:
    """Issue 19: HTML or Markdown in the text is shown to customers as typed: warn before scheduling."""
    csrf = login(client, "mo")
    text = "Hi {first_name}, <b>big</b> news &amp; **more**"
    preview = client.post("/campaigns/new", data=campaign_form(csrf, "preview", message=text))
    assert preview.status_code == 200 and 'id="markup-warning"' in preview.text
    held = client.post("/campaigns/new", data=campaign_form(csrf, message=text))
    assert held.status_code == 422 and "exactly as written" in held.text and campaigns(settings) == []
    sent = client.post("/campaigns/new", data=campaign_form(csrf, message=text, markup_ok="yes"))
    assert sent.status_code == 303 and campaigns(settings)[0].message == text


def test_a_huge_form_is_refused_before_it_is_read(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    response = client.post("/campaigns/new", data=campaign_form(csrf, message="x" * 40_000))
    assert response.status_code == 413 and "too large" in response.text
    assert campaigns(settings) == []


def test_html_in_a_message_is_shown_escaped(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    script = "<script>alert('x')</script>"
    preview = client.post(
        "/campaigns/new", data=campaign_form(csrf, "preview", message=f"{script} Hi {{first_name}}")
    )
    assert script not in preview.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Hi Anna" in preview.text
    client.post(
        "/campaigns/new",
        data=campaign_form(csrf, message=f"{script} Hi {{first_name}}", name=script, markup_ok="yes"),
    )
    for page in (
        client.get("/campaigns/1").text,
        client.get("/campaigns").text,
        client.get("/campaigns/1/edit").text,
    ):
        assert script not in page and "&lt;script&gt;" in page


def test_every_form_needs_the_session_csrf_token(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    assert client.post("/campaigns/new", data=campaign_form("forged")).status_code == 403
    assert client.post("/campaigns/new", data=campaign_form("", "preview")).status_code == 403
    assert campaigns(settings) == []
    client.post("/campaigns/new", data=campaign_form(csrf))
    assert (
        client.post("/campaigns/1/status", data={"csrf_token": "forged", "action": "pause"}).status_code
        == 403
    )
    assert client.post("/campaigns/1/edit", data=campaign_form("forged", name="Changed")).status_code == 403
    [campaign] = campaigns(settings)
    assert (campaign.status, campaign.name) == (CampaignStatus.SCHEDULED, "Winter roast")
    page = client.get("/campaigns/1").text
    assert (
        page.count(f'name="csrf_token" value="{csrf}"') == page.count('<form method="post"') + 1
    )  # + log out


def act(client: TestClient, csrf: str, action: str) -> Any:
    return client.post("/campaigns/1/status", data={"csrf_token": csrf, "action": action, "confirmed": "yes"})


def test_pause_resume_and_cancel(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "ada")  # admins may too
    client.post("/campaigns/new", data=campaign_form(csrf, "draft"))
    assert campaigns(settings)[0].status is CampaignStatus.DRAFT
    assert ">Schedule</button>" in client.get("/campaigns/1").text
    assert act(client, csrf, "schedule").headers["location"] == "/campaigns/1?done=scheduled"
    assert act(client, csrf, "pause").status_code == 303
    assert campaigns(settings)[0].status is CampaignStatus.PAUSED
    page = client.get("/campaigns/1?done=paused").text
    assert "Paused: nothing more is sent" in page and ">Resume</button>" in page
    refused = act(client, csrf, "pause")
    assert refused.status_code == 409 and "A paused campaign cannot be paused." in refused.text
    act(client, csrf, "schedule")
    assert campaigns(settings)[0].status is CampaignStatus.SCHEDULED
    act(client, csrf, "cancel")
    assert campaigns(settings)[0].status is CampaignStatus.CANCELLED
    assert act(client, csrf, "schedule").status_code == 409
    assert "A cancelled campaign cannot be scheduled." in act(client, csrf, "schedule").text
    assert act(client, csrf, "launch").status_code == 409
    assert client.get("/campaigns/99").status_code == 404


def test_a_draft_whose_time_has_passed_cannot_be_scheduled(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    client.post("/campaigns/new", data=campaign_form(csrf, "draft"))
    with crm(settings) as session:
        session.scalars(select(Campaign)).one().schedule = {
            "date": "2020-01-01",
            "time": "10:00",
            "every": "once",
        }
        session.commit()
    response = act(client, csrf, "schedule")
    assert response.status_code == 409 and "has already passed in every time zone" in response.text
    assert campaigns(settings)[0].status is CampaignStatus.DRAFT


def test_a_campaign_can_be_edited_until_it_starts_sending(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    client.post("/campaigns/new", data=campaign_form(csrf))
    form = client.get("/campaigns/1/edit")
    assert form.status_code == 200 and "Hi {first_name}, our winter roast is here!" in form.text
    saved = client.post("/campaigns/1/edit", data=campaign_form(csrf, name="Winter roast 2", segments=["BZ"]))
    assert saved.headers["location"] == "/campaigns/1?done=saved"
    [campaign] = campaigns(settings)
    assert (campaign.name, campaign.audience, campaign.status) == (
        "Winter roast 2",
        {"segments": ["BZ"]},
        CampaignStatus.SCHEDULED,
    )
    with crm(settings) as session:
        fan_out(
            session=session,
            campaign=session.get_one(Campaign, 1),
            occurrence=datetime.now(timezone.utc).date(),
            now=datetime.now(timezone.utc),
        )
        session.commit()
    assert client.get("/campaigns/1/edit").status_code == 303  # back to the campaign page
    refused = client.post("/campaigns/1/edit", data=campaign_form(csrf, name="Too late"))
    assert refused.status_code == 422 and "can no longer be changed" in refused.text
    assert campaigns(settings)[0].name == "Winter roast 2"
    assert ">Edit</a>" not in client.get("/campaigns/1").text


def test_the_campaign_page_shows_progress_figures_and_why_each_delivery_did_not_go(
    client: TestClient, settings: Settings
) -> None:
    csrf = login(client, "mo")
    client.post("/campaigns/new", data=campaign_form(csrf, segments=[]))
    now = datetime.now(timezone.utc)
    with crm(settings) as session:
        customers = [make_customer(session, first_name=f"Figure{n}", timezone="Asia/Tokyo") for n in range(6)]
        outcomes: list[dict[str, Any]] = [
            {"status": DeliveryStatus.SENT, "sent_at": now - timedelta(hours=1), "replied_at": now},
            {"status": DeliveryStatus.SENT, "sent_at": now - timedelta(hours=1)},
            {"status": DeliveryStatus.SKIPPED, "skip_reason": "no_consent"},
            {"status": DeliveryStatus.SKIPPED, "skip_reason": "frequency_cap"},
            {"status": DeliveryStatus.FAILED, "error": "503 rasa_unavailable", "attempts": 6},
            {
                "status": DeliveryStatus.QUEUED,
                "skip_reason": "quiet_hours",
                "scheduled_for": now + timedelta(hours=8),
            },
        ]
        for customer, outcome in zip(customers, outcomes, strict=True):
            session.add(
                Delivery(
                    idempotency_key=f"campaign:1:test:customer:{customer.id}",
                    kind=OutreachKind.CAMPAIGN,
                    customer_id=customer.id,
                    campaign_id=1,
                    **outcome,
                )
            )
        session.commit()
    page = client.get("/campaigns/1").text
    assert "5 of 6 handled (83%)" in page
    figures = dict(re.findall(r'data-figure="(\w+)">(\d+)<', page))
    assert figures == {"sent": "2", "waiting": "1", "failed": "1", "skipped": "2", "replied": "1"}
    assert '— no consent</th><td class="num">1' in page and '— frequency cap</th><td class="num">1' in page
    rows = {
        name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for name, row in re.findall(r"<tr class=\"delivery-\w+\">\s*<td>(Figure\d)(.*?)</tr>", page, re.S)
    }
    sent_in_tokyo = (now - timedelta(hours=1)).astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M")
    assert "sent" in rows["Figure0"] and sent_in_tokyo in rows["Figure0"]  # the customer's own time
    sent_utc = (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert f'title="{sent_utc}">{sent_in_tokyo}</time>' in page  # UTC on hover
    assert "skipped no consent" in rows["Figure2"]
    assert "skipped frequency cap" in rows["Figure3"]
    assert "failed 503 rasa_unavailable" in rows["Figure4"]
    assert "waiting held: quiet hours (due" in rows["Figure5"]
    only_failed = client.get("/campaigns/1?status=failed").text
    assert "Figure4" in only_failed and "Figure0" not in only_failed
    listing = client.get("/campaigns").text
    assert re.search(r"Winter roast.*?<td class=\"num\">6</td>\s*<td class=\"num\">2</td>", listing, re.S)


def test_a_recurring_campaign_shows_its_figures_per_send_day(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    client.post("/campaigns/new", data=campaign_form(csrf, segments=[], every="week"))
    first = datetime.now(timezone.utc).date()
    with crm(settings) as session:
        campaign = session.get_one(Campaign, 1)
        for day in (first, first + timedelta(days=7)):
            fan_out(session=session, campaign=campaign, occurrence=day, now=datetime.now(timezone.utc))
        session.commit()
        anna_first_week = session.scalars(
            select(Delivery)
            .join(Customer, Customer.id == Delivery.customer_id)
            .where(Customer.first_name == "Anna", Delivery.idempotency_key.contains(first.isoformat()))
        ).one()
        anna_first_week.status = DeliveryStatus.SENT
        anna_first_week.sent_at = anna_first_week.replied_at = datetime.now(timezone.utc)
        session.commit()
    page = client.get("/campaigns/1").text
    days = {
        day: [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)]
        for day, row in re.findall(r'<tr data-day="([\d-]+)">(.*?)</tr>', page, re.S)
    }
    # sent, waiting, failed, skipped, replied: Anna's first week went out and was answered; the
    # rest waits for the sender (whose gate checks consent when it sends).
    assert days[first.isoformat()] == [1, 2, 0, 0, 1]
    assert days[(first + timedelta(days=7)).isoformat()] == [0, 3, 0, 0, 0]
    assert list(days) == sorted(days, reverse=True)  # newest first
    once = client.post("/campaigns/new", data=campaign_form(csrf, name="One-off"))
    assert 'data-testid="occurrences"' not in client.get(once.headers["location"]).text


def test_send_now_sends_once_to_everyone_at_the_next_minute(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "mo")
    before = datetime.now(timezone.utc)
    response = client.post(
        "/campaigns/new",
        data=campaign_form(csrf, "now", date="", time="", every="week", segments=[], confirmed="yes"),
    )
    after = datetime.now(timezone.utc)
    assert response.status_code == 303 and response.headers["location"] == "/campaigns/1?done=scheduled"
    [campaign] = campaigns(settings)
    assert campaign.status is CampaignStatus.SCHEDULED
    schedule = campaign.schedule
    assert (schedule["every"], schedule["zone"]) == ("once", "utc")
    moment = datetime.fromisoformat(f"{schedule['date']}T{schedule['time']}+00:00")
    assert before < moment <= after + timedelta(minutes=1) and moment.second == 0
    page = client.get(response.headers["location"]).text
    assert "UTC, the same moment for everyone" in page
    form = client.get("/campaigns/1/edit").text  # the form keeps the mode
    assert re.search(r'<option value="utc"\s+selected>', form)


def test_a_delivery_held_for_a_chat_with_a_person_says_so_in_words(
    client: TestClient, settings: Settings
) -> None:
    """The sender delays a campaign message while a person talks with the customer: the marketer
    read the bare code `held: with_a_person` (scheduler/states.py now labels every reason)."""
    csrf = login(client, "mo")
    client.post("/campaigns/new", data=campaign_form(csrf, segments=[]))
    now = datetime.now(timezone.utc)
    with crm(settings) as session:
        talking, gone = (make_customer(session, first_name=name) for name in ("Talking", "Gone"))
        held = {"status": DeliveryStatus.QUEUED, "skip_reason": "with_a_person"}
        dropped = {"status": DeliveryStatus.SKIPPED, "skip_reason": "not_needed"}
        for customer, outcome in ((talking, held), (gone, dropped)):
            session.add(
                Delivery(
                    idempotency_key=f"campaign:1:test:customer:{customer.id}",
                    kind=OutreachKind.CAMPAIGN,
                    customer_id=customer.id,
                    campaign_id=1,
                    scheduled_for=now + timedelta(minutes=30),
                    **outcome,
                )
            )
        session.commit()
    page = client.get("/campaigns/1").text
    rows = {
        name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for name, row in re.findall(r"<tr class=\"delivery-\w+\">\s*<td>(Talking|Gone)(.*?)</tr>", page, re.S)
    }
    assert "waiting held: in a chat with a person (due" in rows["Talking"]
    assert "skipped no longer needed" in rows["Gone"]
    assert "with_a_person" not in page
