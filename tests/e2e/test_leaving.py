"""Leaving a question and asking about a case, end to end: the real Rasa, action server and CRM."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.crm.models import (
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Handoff,
    InteractionEvent,
    Severity,
    utcnow,
)
from tests.e2e.conftest import Stack, texts
from tests.e2e.test_journeys import seed

pytestmark = pytest.mark.e2e


def file_case(stack: Stack, customer_id: int, *, category: ComplaintCategory, team: str, hours: float) -> int:
    with stack.crm() as crm:
        now = utcnow()
        complaint = Complaint(
            customer_id=customer_id,
            category=category,
            severity=Severity.MEDIUM,
            team=team,
            status=ComplaintStatus.IN_PROGRESS,
            sla_due_at=now + timedelta(hours=hours),
            created_at=now - timedelta(hours=1),
        )
        crm.add(complaint)
        crm.commit()
        return complaint.id


def test_never_mind_leaves_the_complaint_and_files_nothing(stack: Stack) -> None:
    cid = seed(stack, "nina")
    sender = "web:e2e-nina"
    assert "What is it about?" in texts(stack.say(sender, "I want to make a complaint"))

    left = texts(stack.say(sender, "never mind"))

    assert "Nothing has been filed" in left and "What is it about?" not in left
    with stack.crm() as crm:
        assert crm.scalars(select(Complaint).where(Complaint.customer_id == cid)).all() == []
        event = crm.scalars(
            select(InteractionEvent).where(
                InteractionEvent.customer_id == cid, InteractionEvent.kind == "form_left"
            )
        ).one()
        assert event.data["form"] == "complaint"
    greeted = texts(stack.say(sender, "hello"))  # free again: a plain greeting, not the question
    assert "Hi Nina" in greeted and "What is it about?" not in greeted


def test_a_case_status_in_the_middle_of_a_complaint_is_answered_then_the_complaint_goes_on(
    stack: Stack,
) -> None:
    cid = seed(stack, "olaf")  # the Stack is shared with test_journeys: a name of its own
    case = file_case(stack, cid, category=ComplaintCategory.DELIVERY, team="logistics", hours=30)
    sender = "web:e2e-olaf"
    assert "What is it about?" in texts(stack.say(sender, "I want to make a complaint"))

    between = texts(stack.say(sender, "any news on my other complaint?"))

    assert f"Case #{case}" in between and "Logistics team" in between
    assert "(Europe/Berlin time)" in between
    assert "Shall we finish your complaint?" in between and between.rstrip().endswith("What is it about?")


def test_nonsense_twice_offers_a_person_who_is_then_brought_in(stack: Stack) -> None:
    cid = seed(stack, "paul")
    sender = "web:e2e-paul"
    stack.say(sender, "I want to make a complaint")

    first = stack.say(sender, "asdfgh")
    second = stack.say(sender, "qwertyuiop")

    assert "didn't catch that" in texts(first) and "What is it about?" in texts(first)
    assert "keep misunderstanding" in texts(second) and "What is it about?" in texts(second)
    offered = [b for r in second for b in r.get("buttons", []) or []]  # type: ignore[union-attr]
    assert {"title": "Talk to a person", "payload": "/request_human"} in offered
    stack.agents_seen(utcnow())
    assert "getting a person" in texts(stack.say(sender, "/request_human"))
    with stack.crm() as crm:
        assert crm.scalars(select(Handoff).where(Handoff.customer_id == cid)).one().mode == "live"


def test_a_person_asked_for_in_the_contact_form_and_the_feedback_form_left(stack: Stack) -> None:
    seed(stack, "rita")
    sender = "web:e2e-rita"
    assert "new email address, phone number" in texts(stack.say(sender, "I need to update my phone number"))
    stack.agents_seen(utcnow())
    assert "getting a person" in texts(stack.say(sender, "just put me through to a human"))

    seed(stack, "sven")
    other = "web:e2e-sven"
    assert "what would you like to tell us" in texts(stack.say(other, "I'd like to give you some feedback"))
    assert "haven't recorded any feedback" in texts(stack.say(other, "actually never mind"))


def test_several_cases_are_buttons_and_nobody_elses_case_is_told(stack: Stack) -> None:
    cid = seed(stack, "tara")
    first = file_case(stack, cid, category=ComplaintCategory.DELIVERY, team="logistics", hours=30)
    second = file_case(stack, cid, category=ComplaintCategory.BILLING, team="billing", hours=20)
    stranger = seed(stack, "ulla")
    theirs = file_case(stack, stranger, category=ComplaintCategory.BILLING, team="billing", hours=5)
    sender = "web:e2e-tara"

    listed = stack.say(sender, "what's happening with my complaint?")

    assert "You have 2 open cases" in texts(listed)
    buttons = [b for r in listed for b in r.get("buttons", []) or []]  # type: ignore[union-attr]
    assert [b["payload"] for b in buttons] == [  # type: ignore[index]
        f'/case_status{{"complaint_id": "{second}"}}',
        f'/case_status{{"complaint_id": "{first}"}}',
    ]
    chosen = texts(stack.say(sender, str(buttons[1]["payload"])))  # type: ignore[index]
    assert f"Case #{first}" in chosen and "Logistics team" in chosen
    refused = texts(stack.say(sender, f"what about case #{theirs}?"))
    assert f"I can't find case #{theirs} on your account" in refused
    with stack.crm() as crm:
        assert crm.get(Customer, stranger) is not None  # the other customer's case exists all along
