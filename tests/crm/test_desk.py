"""The agents' side of a handoff in the CRM: the queue order, one winner when agents race for a
chat, transfer, ending, and the re-queue of chats whose agent went away (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import count

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from bot.crm import desk
from bot.crm.desk import DeskError
from bot.crm.models import (
    HANDOFF_CALLBACK,
    Agent,
    AuditLog,
    Channel,
    ComplaintStatus,
    Conversation,
    ConversationStatus,
    Customer,
    Handoff,
    HandoffStatus,
    Role,
    Segment,
)
from bot.crm.queries import ensure_conversation
from bot.crm.record import customer_record
from tests.factories import NOW, make_complaint, make_customer, make_order

_ids = count(1)


def make_agent(
    session: Session, name: str = "Alex Agent", *, seen: float | None = 0, **fields: object
) -> Agent:
    agent = Agent(
        username=f"{name.split()[0].lower()}{next(_ids)}",
        display_name=name,
        role=Role.AGENT,
        password_hash="not-used",
        last_seen_at=NOW - timedelta(seconds=seen) if seen is not None else None,
        **fields,
    )
    session.add(agent)
    session.flush()
    return agent


def make_handoff(
    session: Session,
    customer: Customer | None = None,
    *,
    priority: int = 10,
    minutes_ago: float = 5,
    status: HandoffStatus = HandoffStatus.QUEUED,
    agent: Agent | None = None,
    **fields: object,
) -> Handoff:
    customer = customer or make_customer(session, web_id=f"desk-{next(_ids)}")
    sender = f"web:{customer.identities[0].external_id}"
    conversation = ensure_conversation(session=session, sender_id=sender, customer=customer)
    handoff = Handoff(
        conversation_id=conversation.id,
        customer_id=customer.id,
        reason="customer_request",
        priority=priority,
        status=status,
        agent_id=agent.id if agent else None,
        requested_at=NOW - timedelta(minutes=minutes_ago),
        **fields,
    )
    session.add(handoff)
    session.flush()
    return handoff


def test_the_queue_puts_priority_first_then_the_longest_wait_then_chats_being_handled(
    session: Session,
) -> None:
    agent = make_agent(session)
    calm = make_handoff(session, priority=10, minutes_ago=30)
    urgent = make_handoff(session, priority=50, minutes_ago=1)
    same_but_older = make_handoff(session, priority=10, minutes_ago=40)
    handled = make_handoff(session, priority=90, status=HandoffStatus.CLAIMED, agent=agent)
    make_handoff(session, status=HandoffStatus.CLOSED)

    entries = [e for e in desk.open_queue(session=session, now=NOW) if e.handoff_id >= calm.id]

    assert [e.handoff_id for e in entries] == [urgent.id, same_but_older.id, calm.id, handled.id]
    first = entries[0]
    assert (first.status, first.mode, first.channel, first.reason, first.wait_seconds) == (
        "queued",
        "live",
        "web",
        "customer_request",
        60,
    )
    assert entries[-1].agent == "Alex Agent"


def test_claiming_hands_the_conversation_to_the_agent(session: Session) -> None:
    agent = make_agent(session)
    handoff = make_handoff(session, mode=HANDOFF_CALLBACK)

    chat = desk.claim(session=session, handoff_id=handoff.id, agent_id=agent.id, now=NOW)

    session.refresh(handoff)
    assert (handoff.status, handoff.agent_id, handoff.claimed_at) == (HandoffStatus.CLAIMED, agent.id, NOW)
    assert session.get_one(Conversation, chat.conversation_id).status == ConversationStatus.HANDED_OFF
    assert chat.mode == HANDOFF_CALLBACK and chat.sender_id.startswith("web:desk-")
    assert desk.claim(session=session, handoff_id=handoff.id, agent_id=agent.id, now=NOW) == chat  # 2nd click
    audit = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == handoff.id)).all()
    assert audit == ["handoff_claimed"]


def test_a_chat_someone_else_holds_or_that_ended_cannot_be_claimed(session: Session) -> None:
    first, second = make_agent(session, "Alex Agent"), make_agent(session, "Sam Second")
    handoff = make_handoff(session)
    desk.claim(session=session, handoff_id=handoff.id, agent_id=first.id)
    with pytest.raises(DeskError, match="Alex Agent claimed this chat first"):
        desk.claim(session=session, handoff_id=handoff.id, agent_id=second.id)
    desk.finish(session=session, handoff_id=handoff.id, agent_id=first.id, status=HandoffStatus.RETURNED)
    with pytest.raises(DeskError, match="finished"):
        desk.claim(session=session, handoff_id=handoff.id, agent_id=second.id)
    with pytest.raises(DeskError) as missing:
        desk.claim(session=session, handoff_id=10**9, agent_id=second.id)
    assert missing.value.status == 404


def test_only_the_holder_may_transfer_close_or_hand_back(session: Session) -> None:
    holder, other = make_agent(session, "Alex Agent"), make_agent(session, "Sam Second")
    away = make_agent(session, "Gone Away", seen=3600)
    handoff = make_handoff(session, status=HandoffStatus.CLAIMED, agent=holder)
    for attempt in (
        lambda: desk.transfer(
            session=session, handoff_id=handoff.id, agent_id=other.id, to_agent_id=other.id, away_seconds=120
        ),
        lambda: desk.finish(
            session=session,
            handoff_id=handoff.id,
            agent_id=other.id,
            status=HandoffStatus.CLOSED,
            resolution="x",
        ),
        lambda: desk.held_chat(session=session, handoff_id=handoff.id, agent_id=other.id),
    ):
        with pytest.raises(DeskError, match="Alex Agent is handling this chat"):
            attempt()
    with pytest.raises(DeskError, match="Gone Away is not at the console"):
        desk.transfer(
            session=session,
            handoff_id=handoff.id,
            agent_id=holder.id,
            to_agent_id=away.id,
            away_seconds=120,
            now=NOW,
        )
    with pytest.raises(DeskError, match="Write what was resolved"):
        desk.finish(session=session, handoff_id=handoff.id, agent_id=holder.id, status=HandoffStatus.CLOSED)

    chat, target = desk.transfer(
        session=session,
        handoff_id=handoff.id,
        agent_id=holder.id,
        to_agent_id=other.id,
        away_seconds=120,
        now=NOW,
    )
    assert (target.id, session.get_one(Handoff, handoff.id).agent_id) == (other.id, other.id)

    desk.finish(
        session=session,
        handoff_id=handoff.id,
        agent_id=other.id,
        status=HandoffStatus.CLOSED,
        resolution="  Refund sent  ",
        now=NOW,
    )
    ended = session.get_one(Handoff, handoff.id)
    session.refresh(ended)
    assert (ended.status, ended.resolution, ended.closed_at) == (HandoffStatus.CLOSED, "Refund sent", NOW)
    assert session.get_one(Conversation, chat.conversation_id).status == ConversationStatus.BOT


def test_chats_of_an_agent_who_went_away_return_to_the_queue_and_keep_their_place(session: Session) -> None:
    present, gone = make_agent(session, "Alex Agent", seen=30), make_agent(session, "Sam Second", seen=121)
    never_seen = make_agent(session, "Nia New", seen=None)
    kept = make_handoff(session, status=HandoffStatus.CLAIMED, agent=present)
    lost = make_handoff(session, status=HandoffStatus.CLAIMED, agent=gone, minutes_ago=9)
    also_lost = make_handoff(session, status=HandoffStatus.CLAIMED, agent=never_seen)

    requeued = desk.requeue_away(session=session, now=NOW, away_seconds=120)

    assert sorted((r.chat.handoff_id, r.agent) for r in requeued) == [
        (lost.id, "Sam Second"),
        (also_lost.id, "Nia New"),
    ]
    for handoff in (kept, lost, also_lost):
        session.refresh(handoff)
    assert (kept.status, kept.agent_id) == (HandoffStatus.CLAIMED, present.id)
    assert (lost.status, lost.agent_id, lost.claimed_at) == (HandoffStatus.QUEUED, None, None)
    assert lost.requested_at == NOW - timedelta(minutes=9)  # the wait so far still counts
    entry = next(e for e in desk.open_queue(session=session, now=NOW) if e.handoff_id == lost.id)
    assert entry.notice == "Back in the queue: Sam Second was away."
    audit = session.scalar(
        select(AuditLog).where(AuditLog.entity_id == lost.id, AuditLog.action == desk.REQUEUED)
    )
    assert audit is not None and audit.actor == "system" and audit.details["agent_id"] == gone.id
    assert desk.requeue_away(session=session, now=NOW, away_seconds=120) == []


def test_notes_are_checked_and_kept_on_the_customer(session: Session) -> None:
    agent = make_agent(session)
    handoff = make_handoff(session, status=HandoffStatus.CLAIMED, agent=agent)  # only its agent writes notes
    for text, message in (("   ", "empty"), ("x" * 2001, "up to 2000")):
        with pytest.raises(DeskError, match=message):
            desk.add_note(session=session, handoff_id=handoff.id, agent_id=agent.id, text=text)
    note = desk.add_note(session=session, handoff_id=handoff.id, agent_id=agent.id, text=" Prefers email ")
    assert (note.customer_id, note.text) == (handoff.customer_id, "Prefers email")
    record = customer_record(session=session, customer_id=handoff.customer_id)
    assert [(n.title, n.detail) for n in record.notes] == [("Prefers email", "Alex Agent")]


def test_the_record_shows_what_an_agent_needs(session: Session) -> None:
    customer = make_customer(session, web_id="record-1", segment=Segment.MVC, email="pat@example.com")
    make_order(session, customer, total="120.00")
    make_complaint(session, customer)
    open_case = make_complaint(session, customer, status=ComplaintStatus.OPEN, days_ago=1)
    handoff = make_handoff(session, customer)
    other = ensure_conversation(session=session, sender_id="telegram:555", customer=customer)
    other.channel = Channel.TELEGRAM

    record = customer_record(
        session=session, customer_id=customer.id, conversation_id=handoff.conversation_id
    )

    assert record.segment == "MVC" and ("Email", "pat@example.com") in record.profile
    assert record.order_count == 1 and "€120.00" in record.orders[0].detail
    assert [r.title.split()[0] for r in record.open_complaints] == [f"#{open_case.id}"]
    assert len(record.past_complaints) == 1
    assert [r.title for r in record.conversations] == ["telegram:555"]
    assert [r.title for r in record.handoffs] == [
        "the customer asked for a person (live chat): waiting for a person"
    ]
    beside_the_chat = customer_record(
        session=session,
        customer_id=customer.id,
        conversation_id=handoff.conversation_id,
        handoff_id=handoff.id,
    )
    assert beside_the_chat.handoffs == []  # issue 19: "Earlier handoffs" never lists the current one


# ---- the race, with two real connections committing -----------------------------------------


@pytest.fixture
def committed(crm_engine: Engine) -> Iterator[dict[str, int]]:
    """A queued handoff and two agents, committed (and removed afterwards)."""
    with Session(crm_engine) as session:
        first, second = make_agent(session, "Alex Agent"), make_agent(session, "Sam Second")
        handoff = make_handoff(session)
        ids = {"handoff": handoff.id, "customer": handoff.customer_id, "first": first.id, "second": second.id}
        session.commit()
    yield ids
    with Session(crm_engine) as session:
        session.execute(
            delete(AuditLog).where(AuditLog.entity == "handoff", AuditLog.entity_id == ids["handoff"])
        )
        session.execute(delete(Customer).where(Customer.id == ids["customer"]))
        session.execute(delete(Agent).where(Agent.id.in_([ids["first"], ids["second"]])))
        session.commit()


def test_two_agents_claiming_at_once_exactly_one_wins(crm_engine: Engine, committed: dict[str, int]) -> None:
    start = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def claim_as(agent_id: int) -> None:
        with Session(crm_engine) as session:
            start.wait()
            try:
                desk.claim(session=session, handoff_id=committed["handoff"], agent_id=agent_id)
                time.sleep(0.3)  # hold the transaction open: the other claim overlaps it
                session.commit()
                outcomes[agent_id] = "won"
            except DeskError as error:
                session.rollback()
                outcomes[agent_id] = error.message

    threads = [threading.Thread(target=claim_as, args=(committed[k],)) for k in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    names = {committed["first"]: "Alex Agent", committed["second"]: "Sam Second"}
    (winner,) = [agent for agent, outcome in outcomes.items() if outcome == "won"]
    (loser,) = set(names) - {winner}
    assert outcomes[loser] == f"{names[winner]} claimed this chat first."
    with Session(crm_engine) as session:
        handoff = session.get_one(Handoff, committed["handoff"])
        assert (handoff.status, handoff.agent_id) == (HandoffStatus.CLAIMED, winner)
        claims = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == handoff.id, AuditLog.action == "handoff_claimed")
        ).all()
        assert [c.actor for c in claims] == [f"agent:{winner}"]


# ---- a message soon after a close ------------------------------------------------------------


def closed_chat(session: Session, closer: Agent, *, minutes_ago: float) -> Handoff:
    handoff = make_handoff(session, status=HandoffStatus.CLAIMED, agent=closer, minutes_ago=minutes_ago + 10)
    desk.finish(
        session=session,
        handoff_id=handoff.id,
        agent_id=closer.id,
        status=HandoffStatus.CLOSED,
        resolution="New bag sent",
        now=NOW - timedelta(minutes=minutes_ago),
    )
    return handoff


def follow_up(session: Session, handoff: Handoff) -> desk.FollowUp | None:
    return desk.follow_up_after_close(
        session=session,
        conversation_id=handoff.conversation_id,
        now=NOW,
        within=timedelta(minutes=30),
        away_seconds=120,
    )


def test_a_message_soon_after_a_close_goes_back_to_the_agent_at_the_console(session: Session) -> None:
    alex = make_agent(session, seen=30)
    closed = closed_chat(session, alex, minutes_ago=5)

    item = follow_up(session, closed)

    assert item is not None and (item.follows, item.agent_id, item.claimed) == (closed.id, alex.id, True)
    reopened = session.get_one(Handoff, item.chat.handoff_id)
    assert (reopened.status, reopened.agent_id, reopened.reason, reopened.mode) == (
        HandoffStatus.CLAIMED,
        alex.id,
        "follow_up",
        "live",
    )
    assert session.get_one(Conversation, closed.conversation_id).status == ConversationStatus.HANDED_OFF
    entry = next(e for e in desk.open_queue(session=session, now=NOW) if e.handoff_id == reopened.id)
    assert (entry.status, entry.agent, entry.notice) == (
        "claimed",
        "Alex Agent",
        "Follow-up: the customer wrote again soon after Alex Agent closed the chat.",
    )
    assert follow_up(session, closed) is None  # the conversation is with a person now: once only


def test_a_follow_up_whose_agent_went_away_waits_in_the_queue_marked_as_one(session: Session) -> None:
    alex = make_agent(session, seen=600)  # last seen ten minutes ago
    closed = closed_chat(session, alex, minutes_ago=5)

    item = follow_up(session, closed)

    assert item is not None and not item.claimed
    entry = next(e for e in desk.open_queue(session=session, now=NOW) if e.handoff_id == item.chat.handoff_id)
    assert (entry.status, entry.agent_id, entry.reason) == ("queued", None, "follow_up")
    assert entry.notice == "Follow-up: the customer wrote again soon after Alex Agent closed the chat."


def test_after_the_follow_up_window_or_a_hand_back_the_bot_answers(session: Session) -> None:
    alex = make_agent(session, seen=30)
    long_ago = closed_chat(session, alex, minutes_ago=31)
    assert follow_up(session, long_ago) is None
    handed_back = make_handoff(session, status=HandoffStatus.CLAIMED, agent=alex)
    desk.finish(
        session=session,
        handoff_id=handed_back.id,
        agent_id=alex.id,
        status=HandoffStatus.RETURNED,
        now=NOW - timedelta(minutes=1),
    )
    assert follow_up(session, handed_back) is None
    assert session.get_one(Conversation, long_ago.conversation_id).status == ConversationStatus.BOT
