"""The case desk in the real console, behind a real gateway: who sees which case, CSRF, a stale
form, bad input, escaping; and the loop to the customer through the gateway and the scheduler's
sender: resolve → the customer reads the resolution → the revisit → a "no" reopens the case to its
owner at top priority; ask → the customer answers in the widget → the answer is on the case."""

from __future__ import annotations

import re
from datetime import time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.actions.checkin import ActionReopenComplaint
from bot.crm.complaints import file_complaint
from bot.crm.db import make_engine
from bot.crm.models import (
    Agent,
    AgentTeam,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Conversation,
    Customer,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    Role,
    Team,
    utcnow,
)
from bot.gateway.tokens import visitor_of
from scheduler import checkins
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.actions.conftest import make_tracker, run_action, use_database
from tests.console.conftest import ConsoleClient, _password_hash
from tests.gateway.harness import INTERNAL_TOKEN, SECRET_KEY, RunningGateway, connect
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(120)


def in_team(gateway: RunningGateway, username: str, *teams: Team) -> int:
    with gateway.crm() as crm:
        agent = crm.scalar(select(Agent).where(Agent.username == username))
        assert agent is not None
        for team in teams:
            crm.add(AgentTeam(agent_id=agent.id, team=team))
        crm.commit()
        return agent.id


def add_lead(gateway: RunningGateway, *teams: Team) -> ConsoleClient:
    with gateway.crm() as crm:
        crm.add(
            Agent(
                username="lee", display_name="Lee Lead", role=Role.LEAD, password_hash=_password_hash("lee")
            )
        )
        crm.commit()
    in_team(gateway, "lee", *teams)
    return ConsoleClient(gateway, "lee").login()


def file_case(
    gateway: RunningGateway,
    *,
    category: ComplaintCategory = ComplaintCategory.DELIVERY,
    words: str = "The parcel came crushed",
    customer_id: int | None = None,
    conversation_id: int | None = None,
    order_total: str | None = None,
) -> int:
    with gateway.crm() as crm:
        customer = (
            crm.get(Customer, customer_id) if customer_id else Customer(first_name="Casey", last_name="Case")
        )
        assert customer is not None
        crm.add(customer)
        crm.flush()
        order = None
        if order_total is not None:
            now = utcnow()
            order = Order(
                number=f"CL-{customer.id:05d}",
                customer_id=customer.id,
                status=OrderStatus.DELIVERED,
                total=Decimal(order_total),
                placed_at=now - timedelta(days=5),
                delivered_at=now - timedelta(days=2),
            )
            crm.add(order)
            crm.flush()
        filed = file_complaint(
            session=crm,
            customer=customer,
            category=category,
            description=words,
            order=order,
            angry=False,
            conversation=crm.get(Conversation, conversation_id) if conversation_id else None,
        )
        crm.commit()
        return filed.complaint.id


def the_case(gateway: RunningGateway, case_id: int) -> Complaint:
    with gateway.crm() as crm:
        complaint = crm.get(Complaint, case_id)
        assert complaint is not None
        crm.expunge(complaint)
        return complaint


def form_values(html: str) -> dict[str, str]:
    """The version and last-seen history entry a case page's forms carry."""
    version = re.search(r'name="version" value="(\d+)"', html)
    seen = re.search(r'name="seen" value="(\d+)"', html)
    assert version and seen, "the case page has no work forms"
    return {"version": version.group(1), "seen": seen.group(1)}


def test_agents_see_their_teams_cases_only_leads_their_team_admins_all(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    in_team(desk_gateway, "alex", Team.LOGISTICS)
    delivery = file_case(desk_gateway)
    billing = file_case(desk_gateway, category=ComplaintCategory.BILLING, words="Charged twice")
    lead = add_lead(desk_gateway, Team.BILLING)
    alex, sam, mo, ada = (console[name] for name in ("alex", "sam", "mo", "ada"))

    page = alex.http.get("/cases")
    assert page.status_code == 200
    assert f"/cases/{delivery}" in page.text and f"/cases/{billing}" not in page.text
    refused = alex.http.get(f"/cases/{billing}")
    assert refused.status_code == 403 and "Billing team, which you are not in" in refused.text
    assert alex.post(f"/cases/{billing}/notes", {"text": "peek"}).status_code == 403
    assert f"/cases/{delivery}" not in sam.http.get("/cases").text  # in no team yet
    assert "You are in no team yet" in sam.http.get("/cases").text
    assert mo.http.get("/cases").status_code == 403  # marketers do not work cases
    lead_page = lead.http.get("/cases").text
    lead.close()
    assert f"/cases/{billing}" in lead_page and f"/cases/{delivery}" not in lead_page
    everything = ada.http.get("/cases").text
    assert f"/cases/{delivery}" in everything and f"/cases/{billing}" in everything
    assert 'href="/console/cases">Cases</a>' in alex.http.get("/").text
    assert 'href="/console/cases">Cases</a>' not in mo.http.get("/").text


def test_every_case_form_needs_the_csrf_token(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    in_team(desk_gateway, "alex", Team.LOGISTICS)
    case_id = file_case(desk_gateway)
    alex = console["alex"]
    for action, data in [
        ("take", {}),
        ("state", {"state": "open"}),
        ("assign", {"team": "billing"}),
        ("notes", {"text": "x"}),
        ("ask", {"question": "Photo?"}),
        ("resolve", {"resolution": "Done", "remedy": "none"}),
    ]:
        for token in ("", "forged"):
            response = alex.post(f"/cases/{case_id}/{action}", data, as_json=False, csrf=token)
            assert response.status_code == 403, (action, token, response.text)
    complaint = the_case(desk_gateway, case_id)
    assert (complaint.status, complaint.owner_id, complaint.team) == (ComplaintStatus.OPEN, None, "logistics")


def test_a_stale_form_is_refused_with_what_changed(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    in_team(desk_gateway, "alex", Team.LOGISTICS)
    in_team(desk_gateway, "sam", Team.LOGISTICS)
    case_id = file_case(desk_gateway)
    alex, sam = console["alex"], console["sam"]
    shown_to_sam = form_values(sam.http.get(f"/cases/{case_id}").text)
    taken = alex.post(
        f"/cases/{case_id}/take", form_values(alex.http.get(f"/cases/{case_id}").text), as_json=False
    )
    assert taken.status_code == 303 and taken.headers["location"].endswith("done=taken")

    stale = sam.post(f"/cases/{case_id}/take", shown_to_sam, as_json=False)
    assert stale.status_code == 409
    assert "Someone changed this case after you opened it" in stale.text
    assert "Alex Agent: open → in progress" in stale.text
    assert the_case(desk_gateway, case_id).status is ComplaintStatus.IN_PROGRESS
    with desk_gateway.crm() as crm:
        owner = crm.scalar(select(Complaint.owner_id).where(Complaint.id == case_id))
        alex_id = crm.scalar(select(Agent.id).where(Agent.username == "alex"))
    assert owner == alex_id


def test_bad_input_gets_a_clear_message_and_changes_nothing(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    in_team(desk_gateway, "alex", Team.LOGISTICS)
    case_id = file_case(desk_gateway, order_total="40.00")
    with desk_gateway.crm() as crm:  # the order was refunded already: the policy allows no second one
        complaint = crm.get_one(Complaint, case_id)
        crm.add(
            Refund(
                order_id=complaint.order_id,
                customer_id=complaint.customer_id,
                amount=Decimal("40.00"),
                status=RefundStatus.PAID,
                requested_at=utcnow(),
            )
        )
        crm.commit()
    alex = console["alex"]
    assert alex.post(f"/cases/{case_id}/take", as_json=False).status_code == 303
    before = the_case(desk_gateway, case_id)
    page = f"/cases/{case_id}/resolve"
    for data, message in [
        ({"resolution": "  ", "remedy": "none"}, "Write the resolution: it is what the customer will read."),
        (
            {"resolution": "Done", "remedy": "voucher"},
            "Choose a remedy: refund, replacement, credit or none.",
        ),
        ({"resolution": "Done", "remedy": "refund"}, "The refund policy does not allow a refund of order"),
        (
            {"resolution": "Done", "remedy": "credit", "credit": "500"},
            "A credit is more than €0 and at most €50.00",
        ),
    ]:
        response = alex.post(page, data, as_json=False)
        assert response.status_code == 400, response.text
        assert message in response.text
        assert 'id="resolution"' in response.text and data["resolution"].strip() in response.text  # kept
    assert alex.post(f"/cases/{case_id}/state", {"state": "resolved"}, as_json=False).status_code == 400
    assert alex.post(f"/cases/{case_id}/ask", {"question": " "}, as_json=False).status_code == 400
    after = the_case(desk_gateway, case_id)
    assert (after.status, after.version, after.remedy, after.resolution) == (
        before.status,
        before.version,
        None,
        None,
    )


def test_customer_words_notes_and_history_are_shown_escaped(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    in_team(desk_gateway, "alex", Team.LOGISTICS)
    case_id = file_case(desk_gateway, words='<img src=x onerror="alert(1)"> broken')
    alex = console["alex"]
    noted = alex.post(f"/cases/{case_id}/notes", {"text": "<script>alert('note')</script>"}, as_json=False)
    assert noted.status_code == 303
    html = alex.http.get(f"/cases/{case_id}").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; broken" in html


async def test_resolve_tells_the_customer_and_a_no_to_the_revisit_reopens_it_on_top(
    desk_gateway: RunningGateway,
    console: dict[str, ConsoleClient],
    rasa: StandInRasa,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    alex_id = in_team(desk_gateway, "alex", Team.LOGISTICS)
    visitor = await connect(desk_gateway)
    await visitor.say("my parcel is crushed")
    await visitor.reply()
    sender_id = f"web:{visitor_of(SECRET_KEY, visitor.token)}"
    with desk_gateway.crm() as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
        assert conversation is not None
        customer_id, conversation_id = conversation.customer_id, conversation.id
    case_id = file_case(
        desk_gateway, customer_id=customer_id, conversation_id=conversation_id, order_total="30"
    )
    other = file_case(desk_gateway, words="Another late parcel")  # later-due cases stay below a reopened one
    alex = console["alex"]

    page = alex.http.get(f"/cases/{case_id}").text
    assert "my parcel is crushed" in page  # the conversation it came from
    assert alex.post(f"/cases/{case_id}/take", form_values(page), as_json=False).status_code == 303

    # Ask a question: the scheduler's sender delivers it in the customer's channel...
    rasa.intents["EXTERNAL_campaign"] = [{"text": "(the question, as Rasa says it)"}]
    asked = alex.post(f"/cases/{case_id}/ask", {"question": "Could you send a photo?"}, as_json=False)
    assert asked.status_code == 303
    engine, gateway = (
        make_engine(desk_gateway.settings.database_url),
        HttpGateway(desk_gateway.url, INTERNAL_TOKEN),
    )
    request.addfinalizer(engine.dispose)
    request.addfinalizer(gateway.close)
    sender = Sender(
        sessionmaker(bind=engine, expire_on_commit=False),
        gateway,
        Policy(time(0, 0), time(0, 0), weekly_cap=0),  # never quiet; a full week's cap changes nothing
        clock=utcnow,
        rate_per_second=0,
    )
    assert sender.run_due()["sent"] == 1
    call = rasa.trigger_calls[-1]
    assert call["name"] == "EXTERNAL_campaign"
    assert "Could you send a photo?" in call["entities"]["campaign_text"]
    assert (await visitor.reply())["text"] == "(the question, as Rasa says it)"
    # ...and the customer's answer lands on the case, which is in progress again.
    rasa.intents["EXTERNAL_case_answer"] = [{"text": "(the acknowledgement, as Rasa says it)"}]
    await visitor.say("Here it is: photo.jpg")
    # The bot hears it as the case's answer, through the HTTP API, with the customer's words as history.
    assert (await visitor.reply())["text"] == "(the acknowledgement, as Rasa says it)"
    call = rasa.trigger_calls[-1]
    assert (call["name"], call["entities"]) == ("EXTERNAL_case_answer", {"complaint_id": str(case_id)})
    assert rasa.appended[-1]["text"] == "Here it is: photo.jpg"
    assert rasa.appended[-1]["metadata"]["added_late"] is True
    page = alex.http.get(f"/cases/{case_id}").text
    assert "The customer answered: Here it is: photo.jpg" in page
    assert the_case(desk_gateway, case_id).status is ComplaintStatus.IN_PROGRESS

    # Resolve with a refund: the refund policy makes the refund, the customer reads the resolution.
    rasa.intents["EXTERNAL_campaign"] = [{"text": "(the resolution, as Rasa says it)"}]
    resolved = alex.post(
        f"/cases/{case_id}/resolve",
        {"resolution": "We refunded your order.", "remedy": "refund"},
        as_json=False,
    )
    assert resolved.status_code == 303, resolved.text
    assert sender.run_due()["sent"] == 1
    told = rasa.trigger_calls[-1]["entities"]["campaign_text"]
    assert told.startswith(f"Update on your complaint (case #{case_id}): We refunded your order.")
    assert "Your refund of €30.00 for order" in told and "is approved" in told
    assert (await visitor.reply())["text"] == "(the resolution, as Rasa says it)"
    assert sender.run_due()["sent"] == 0  # told once

    # Three days later the existing revisit asks whether everything is fine now.
    later = utcnow() + timedelta(days=3, minutes=1)
    with sender.factory.begin() as session:
        checkins.complaint_followups(session=session, now=later)
    sender.clock = lambda: later
    assert sender.run_due()["sent"] == 1
    revisit = rasa.trigger_calls[-1]
    assert (revisit["name"], revisit["entities"]) == ("EXTERNAL_checkin", {"complaint_id": str(case_id)})
    assert (await visitor.reply())["text"] == "Hi again! Is everything fine with your order?"

    # "No": Rasa runs the action server's reopening (here the real action, called as Rasa would).
    use_database(monkeypatch, desk_gateway.settings.database_url)
    await run_action(
        ActionReopenComplaint(), make_tracker(sender_id, intent="deny", slots={"complaint_id": str(case_id)})
    )
    reopened = the_case(desk_gateway, case_id)
    assert (reopened.status, reopened.owner_id, reopened.priority) == (ComplaintStatus.REOPENED, alex_id, 1)
    listing = alex.http.get("/cases").text
    assert listing.index(f'data-case="{case_id}"') < listing.index(f'data-case="{other}"')
    assert "top priority" in listing
    with desk_gateway.crm() as crm:
        kinds = [e.kind for e in crm.scalars(select(CaseEvent).where(CaseEvent.complaint_id == case_id))]
    assert kinds[-1] is CaseEventKind.REOPENED and CaseEventKind.ANSWER in kinds


def test_a_users_teams_are_set_on_the_users_page(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    ada = console["ada"]
    with desk_gateway.crm() as crm:
        alex_id = crm.scalar(select(Agent.id).where(Agent.username == "alex"))
    response = ada.http.post(
        f"/users/{alex_id}/teams",
        data={"csrf_token": ada.csrf, "team": ["logistics", "tech"]},
    )
    assert response.status_code == 303 and response.headers["location"].endswith("done=teams")
    assert ada.post(f"/users/{alex_id}/teams", {"team": "marketing"}, as_json=False).status_code == 409
    assert console["alex"].post(f"/users/{alex_id}/teams", {"team": "tech"}).status_code == 403
    with desk_gateway.crm() as crm:
        teams = set(crm.scalars(select(AgentTeam.team).where(AgentTeam.agent_id == alex_id)))
    assert teams == {Team.LOGISTICS, Team.TECH}
    page = ada.http.get("/users").text
    assert 'value="tech" checked' in page
