"""The agents' side of a handoff: the queue, claiming (one winner), transfer, notes, closing,
handing back, and returning the chats of an agent who went away. The caller owns the session.

Every change of who holds a chat is one conditional UPDATE, so two agents (or an agent and the
re-queue sweep) racing for the same handoff cannot both win: the loser sees zero rows changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.crm import handoffs
from bot.crm.models import (
    Agent,
    AgentNote,
    AuditLog,
    CannedReply,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    Handoff,
    HandoffStatus,
    Role,
    utcnow,
)
from bot.crm.queries import record_audit

OPEN = (HandoffStatus.QUEUED, HandoffStatus.CLAIMED)
CHAT_ROLES = (Role.AGENT, Role.LEAD, Role.ADMIN)
MAX_NOTE = 2000
MAX_RESOLUTION = 2000
REQUEUED = "handoff_requeued"
FOLLOWED_UP = "handoff_follow_up"


class DeskError(Exception):
    """What the agent tried cannot be done; the message says why, in words for the agent."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class QueueEntry:
    handoff_id: int
    conversation_id: int
    customer_id: int
    customer: str
    segment: str
    temperament: str
    churn_risk: float
    channel: str
    reason: str
    mode: str
    priority: int
    status: str
    agent_id: int | None
    agent: str | None
    requested_at: datetime
    wait_seconds: int
    callback_by: datetime | None
    notice: str | None  # e.g. why it came back to the queue

    def view(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("requested_at", "callback_by"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class Chat:
    """The handoff an agent works on, with what the gateway needs to reach the customer."""

    handoff_id: int
    conversation_id: int
    customer_id: int
    sender_id: str
    channel: Channel
    mode: str
    status: HandoffStatus
    agent_id: int | None


@dataclass(frozen=True)
class Requeued:
    chat: Chat
    agent_id: int
    agent: str


@dataclass(frozen=True)
class FollowUp:
    """A conversation a person closed, opened again because the customer wrote soon after."""

    chat: Chat
    follows: int  # the closed handoff
    agent_id: int  # who closed it
    agent: str
    claimed: bool  # they are at the console: it went straight back to them


def open_queue(*, session: Session, now: datetime | None = None) -> list[QueueEntry]:
    """Open handoffs: waiting ones by priority then waiting time, then those being worked on."""
    now = now or utcnow()
    rows = session.execute(
        select(Handoff, Customer, Conversation, Agent)
        .join(Customer, Customer.id == Handoff.customer_id)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .outerjoin(Agent, Agent.id == Handoff.agent_id)
        .where(Handoff.status.in_(OPEN))
        .order_by(Handoff.priority.desc(), Handoff.requested_at, Handoff.id)
    ).all()
    notices = _notices(session, [h.id for h, *_ in rows])
    entries = [
        QueueEntry(
            handoff_id=handoff.id,
            conversation_id=conversation.id,
            customer_id=customer.id,
            customer=customer.display_name,
            segment=customer.segment.value,
            temperament=customer.temperament.value,
            churn_risk=customer.churn_risk or 0.0,
            channel=conversation.channel.value,
            reason=handoff.reason,
            mode=handoff.mode,
            priority=handoff.priority,
            status=handoff.status.value,
            agent_id=handoff.agent_id,
            agent=agent.display_name if agent else None,
            requested_at=handoff.requested_at,
            wait_seconds=max(0, int((now - handoff.requested_at).total_seconds())),
            callback_by=handoff.callback_by,
            notice=notices.get(handoff.id),
        )
        for handoff, customer, conversation, agent in rows
    ]
    return sorted(entries, key=lambda e: e.status != HandoffStatus.QUEUED.value)  # stable: keeps the order


def _notices(session: Session, handoff_ids: list[int]) -> dict[int, str]:
    """Why a handoff is where it is, for the queue: back from an agent who went away, or a follow-up."""
    if not handoff_ids:
        return {}
    entries = session.scalars(
        select(AuditLog)
        .where(
            AuditLog.entity == "handoff",
            AuditLog.entity_id.in_(handoff_ids),
            AuditLog.action.in_((REQUEUED, FOLLOWED_UP)),
        )
        .order_by(AuditLog.id)
    )
    return {e.entity_id: _notice_of(e) for e in entries if e.entity_id}


def _notice_of(entry: AuditLog) -> str:
    agent = str(entry.details.get("agent", "an agent"))
    return requeue_notice(agent) if entry.action == REQUEUED else follow_up_notice(agent)


def follow_up_notice(agent: str) -> str:
    return f"Follow-up: the customer wrote again soon after {agent} closed the chat."


def requeue_notice(agent: str) -> str:
    return f"Back in the queue: {agent} was away."


def queue_signature(*, session: Session) -> tuple[tuple[int, str, int | None], ...]:
    """What the queue looks like, cheaply: changes whenever a handoff opens, moves or ends."""
    rows = session.execute(
        select(Handoff.id, Handoff.status, Handoff.agent_id)
        .where(Handoff.status.in_(OPEN))
        .order_by(Handoff.id)
    ).all()
    return tuple((row[0], row[1].value, row[2]) for row in rows)


def chat_of(*, session: Session, handoff_id: int) -> Chat:
    handoff = session.get(Handoff, handoff_id, populate_existing=True)
    if handoff is None:
        raise DeskError("There is no such handoff.", 404)
    conversation = session.get_one(Conversation, handoff.conversation_id)
    return Chat(
        handoff.id,
        conversation.id,
        handoff.customer_id,
        conversation.sender_id,
        conversation.channel,
        handoff.mode,
        handoff.status,
        handoff.agent_id,
    )


def held_chat(*, session: Session, handoff_id: int, agent_id: int) -> Chat:
    """The chat, if `agent_id` holds it now; otherwise a DeskError saying who does."""
    chat = chat_of(session=session, handoff_id=handoff_id)
    if chat.status == HandoffStatus.CLAIMED and chat.agent_id == agent_id:
        return chat
    raise DeskError(_not_yours(session, chat))


def _not_yours(session: Session, chat: Chat) -> str:
    if chat.status == HandoffStatus.QUEUED:
        return "This chat is waiting in the queue: claim it first."
    if chat.status == HandoffStatus.CLAIMED:
        holder = session.get(Agent, chat.agent_id) if chat.agent_id else None
        return f"{holder.display_name if holder else 'Another agent'} is handling this chat."
    return "This chat is finished (it was closed or handed back to the bot)."


def claim(*, session: Session, handoff_id: int, agent_id: int, now: datetime | None = None) -> Chat:
    """Take a waiting chat. Exactly one of several agents claiming at once wins; the others get a
    DeskError naming who was first. Claiming a chat one already holds is harmless."""
    now = now or utcnow()
    won = session.execute(
        update(Handoff)
        .where(Handoff.id == handoff_id, Handoff.status == HandoffStatus.QUEUED)
        .values(status=HandoffStatus.CLAIMED, agent_id=agent_id, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    chat = chat_of(session=session, handoff_id=handoff_id)
    if not _rowcount(won):
        if chat.status == HandoffStatus.CLAIMED and chat.agent_id == agent_id:
            return chat
        if chat.status == HandoffStatus.CLAIMED:
            holder = session.get(Agent, chat.agent_id) if chat.agent_id else None
            raise DeskError(f"{holder.display_name if holder else 'Another agent'} claimed this chat first.")
        raise DeskError(_not_yours(session, chat))
    session.get_one(Conversation, chat.conversation_id).status = ConversationStatus.HANDED_OFF
    _audit(session, agent_id, "handoff_claimed", chat, {"mode": chat.mode})
    return chat


def transfer(
    *,
    session: Session,
    handoff_id: int,
    agent_id: int,
    to_agent_id: int,
    away_seconds: float,
    now: datetime | None = None,
) -> tuple[Chat, Agent]:
    """Give a chat one holds to another agent who is at the console now."""
    now = now or utcnow()
    held_chat(session=session, handoff_id=handoff_id, agent_id=agent_id)
    target = session.get(Agent, to_agent_id)
    if target is None or not target.active or target.role not in CHAT_ROLES:
        raise DeskError("Choose an agent who works chats.", 400)
    if target.id == agent_id:
        raise DeskError("You already hold this chat.", 400)
    if not _present(target, now, away_seconds):
        raise DeskError(f"{target.display_name} is not at the console right now.")
    moved = session.execute(
        update(Handoff)
        .where(
            Handoff.id == handoff_id, Handoff.status == HandoffStatus.CLAIMED, Handoff.agent_id == agent_id
        )
        .values(agent_id=target.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    chat = chat_of(session=session, handoff_id=handoff_id)
    if not _rowcount(moved):
        raise DeskError(_not_yours(session, chat))
    _audit(
        session, agent_id, "handoff_transferred", chat, {"to_agent_id": target.id, "to": target.display_name}
    )
    return chat, target


def finish(
    *,
    session: Session,
    handoff_id: int,
    agent_id: int,
    status: HandoffStatus,
    resolution: str | None = None,
    now: datetime | None = None,
) -> Chat:
    """End a chat one holds: RETURNED (handed back to the bot) or CLOSED with a resolution. Either
    way the conversation is the bot's again."""
    if status not in (HandoffStatus.RETURNED, HandoffStatus.CLOSED):
        raise ValueError(f"a handoff ends as returned or closed, not {status}")
    resolution = (resolution or "").strip()[:MAX_RESOLUTION] or None
    if status == HandoffStatus.CLOSED and resolution is None:
        raise DeskError("Write what was resolved before closing.", 400)
    now = now or utcnow()
    ended = session.execute(
        update(Handoff)
        .where(
            Handoff.id == handoff_id, Handoff.status == HandoffStatus.CLAIMED, Handoff.agent_id == agent_id
        )
        .values(status=status, closed_at=now, resolution=resolution)
        .execution_options(synchronize_session=False)
    )
    chat = chat_of(session=session, handoff_id=handoff_id)
    if not _rowcount(ended):
        raise DeskError(_not_yours(session, chat))
    session.get_one(Conversation, chat.conversation_id).status = ConversationStatus.BOT
    action = "handoff_returned" if status == HandoffStatus.RETURNED else "handoff_closed"
    _audit(session, agent_id, action, chat, {})  # the resolution stays on the handoff (erasable)
    return chat


def follow_up_after_close(
    *, session: Session, conversation_id: int, now: datetime, within: timedelta, away_seconds: float
) -> FollowUp | None:
    """The customer wrote again within `within` of a person closing their chat: open a follow-up
    handoff, held at once by the agent who closed it if they are at the console (else queued, marked
    as a follow-up), and give the conversation to people again. None if no close is that recent (or
    the conversation is with a person already)."""
    latest = session.scalar(
        select(Handoff).where(Handoff.conversation_id == conversation_id).order_by(Handoff.id.desc()).limit(1)
    )
    if (
        latest is None
        or latest.status is not HandoffStatus.CLOSED
        or latest.closed_at is None
        or latest.closed_at < now - within
        or latest.agent_id is None
    ):
        return None
    conversation = session.get_one(Conversation, conversation_id)
    customer = session.get_one(Customer, latest.customer_id)
    handoff, created = handoffs.open_handoff(
        session=session, customer=customer, conversation=conversation, reason=handoffs.FOLLOW_UP, now=now
    )
    if not created:
        return None
    closer = session.get_one(Agent, latest.agent_id)
    back_to_closer = closer.active and closer.role in CHAT_ROLES and _present(closer, now, away_seconds)
    if back_to_closer:
        handoff.status, handoff.agent_id, handoff.claimed_at = HandoffStatus.CLAIMED, closer.id, now
    session.flush()
    record_audit(
        session=session,
        actor="system",
        action=FOLLOWED_UP,
        entity="handoff",
        entity_id=handoff.id,
        details={
            "conversation_id": conversation_id,
            "follows": latest.id,
            "agent_id": closer.id,
            "agent": closer.display_name,
            "claimed": back_to_closer,
        },
    )
    chat = chat_of(session=session, handoff_id=handoff.id)
    return FollowUp(chat, latest.id, closer.id, closer.display_name, back_to_closer)


def requeue_away(*, session: Session, now: datetime, away_seconds: float) -> list[Requeued]:
    """Return the chats of agents unseen for more than `away_seconds` to the queue (they keep their
    place: the waiting time counts from the original request)."""
    cutoff = now - timedelta(seconds=away_seconds)
    rows = session.execute(
        select(Handoff.id, Agent.id, Agent.display_name)
        .join(Agent, Agent.id == Handoff.agent_id)
        .where(
            Handoff.status == HandoffStatus.CLAIMED,
            or_(Agent.last_seen_at.is_(None), Agent.last_seen_at < cutoff),
        )
        .order_by(Handoff.id)
    ).all()
    requeued = []
    for handoff_id, agent_id, agent_name in rows:
        back = session.execute(
            update(Handoff)
            .where(
                Handoff.id == handoff_id,
                Handoff.status == HandoffStatus.CLAIMED,
                Handoff.agent_id == agent_id,
            )
            .values(status=HandoffStatus.QUEUED, agent_id=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        if not _rowcount(back):
            continue
        chat = chat_of(session=session, handoff_id=handoff_id)
        record_audit(
            session=session,
            actor="system",
            action=REQUEUED,
            entity="handoff",
            entity_id=handoff_id,
            details={"agent_id": agent_id, "agent": agent_name, "away_seconds": away_seconds},
        )
        requeued.append(Requeued(chat, agent_id, agent_name))
    return requeued


def touch_agent(*, session: Session, agent_id: int, now: datetime | None = None) -> None:
    """The agent is at the console (the console's heartbeat)."""
    session.execute(
        update(Agent)
        .where(Agent.id == agent_id)
        .values(last_seen_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def present_agents(*, session: Session, now: datetime, away_seconds: float) -> list[Agent]:
    """Active chat workers seen at the console within `away_seconds` (transfer targets)."""
    cutoff = now - timedelta(seconds=away_seconds)
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.active.is_(True), Agent.role.in_(CHAT_ROLES), Agent.last_seen_at >= cutoff)
            .order_by(Agent.display_name)
        )
    )


def may_note(*, session: Session, chat: Chat, agent_id: int) -> bool:
    """Whether `agent_id` may add notes to the chat: notes are part of handling it, so the agent
    holding it may, and an admin (the desk's lead) may on any chat; nobody else, whatever its state
    (an agent claims a waiting chat first, and a held one is its holder's)."""
    if chat.status == HandoffStatus.CLAIMED and chat.agent_id == agent_id:
        return True
    agent = session.get(Agent, agent_id)
    return agent is not None and agent.active and agent.role is Role.ADMIN


def add_note(
    *, session: Session, handoff_id: int, agent_id: int, text: str, now: datetime | None = None
) -> AgentNote:
    """An internal note on the customer, made in this handoff (never sent to the customer)."""
    chat = chat_of(session=session, handoff_id=handoff_id)
    if not may_note(session=session, chat=chat, agent_id=agent_id):
        raise DeskError(
            f"{_not_yours(session, chat)} Only the agent handling it or an admin can add notes.", 403
        )
    text = text.strip()
    if not text:
        raise DeskError("The note is empty.", 400)
    if len(text) > MAX_NOTE:
        raise DeskError(f"A note may have up to {MAX_NOTE} characters.", 400)
    note = AgentNote(
        customer_id=chat.customer_id,
        handoff_id=handoff_id,
        agent_id=agent_id,
        text=text,
        created_at=now or utcnow(),
    )
    session.add(note)
    session.flush()
    return note


def canned_replies(*, session: Session) -> list[CannedReply]:
    return list(
        session.scalars(select(CannedReply).where(CannedReply.active.is_(True)).order_by(CannedReply.title))
    )


def handoff_events(*, session: Session, handoff_id: int) -> list[AuditLog]:
    """What happened to a handoff (claimed, transferred, back in the queue, …), oldest first."""
    return list(
        session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == "handoff", AuditLog.entity_id == handoff_id)
            .order_by(AuditLog.id)
        )
    )


def _present(agent: Agent, now: datetime, away_seconds: float) -> bool:
    return agent.last_seen_at is not None and agent.last_seen_at >= now - timedelta(seconds=away_seconds)


def _audit(session: Session, agent_id: int, action: str, chat: Chat, details: dict[str, Any]) -> None:
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action=action,
        entity="handoff",
        entity_id=chat.handoff_id,
        details={"conversation_id": chat.conversation_id, **details},
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
