"""Feedback that reaches someone: every customer's words the bot thanks them for become an item on
the console's Feedback page, grouped by theme, with an owner and a state, until someone tells the
customer what changed.

Where items come from (`file_feedback`, called where the words are stored): free feedback and
comments on a rating (`bot/crm/surveys.py record_comment`), and the answer a leaving customer gives
to the exit question (`bot/crm/retention.py record_exit_answer`). The theme, the product and the
competitor are read by the same text analysis the bot uses on every message (`bot/nlp/analysis.py`)
when the item is filed; rows the migration copied are read by the page (`read_themes`).

Who: agents, leads and admins see every item (feedback belongs to the whole company, not to one
team). Anyone may take an item nobody owns, or give it to someone; the owner, a lead or an admin
works it (state, reassigning, telling the customer).

Every change names the item version it was made from: a form shown before someone else's change is
refused (`StaleItem`) with what changed since, before anything is written. Telling the customer is a
service message queued with the cases' `queue_personal_message` (the scheduler sends it through the
gateway's proactive path and the policy gate) under one idempotency key per item, so it goes once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.cases import queue_personal_message
from bot.crm.labels import label
from bot.crm.models import (
    Agent,
    ComplaintCategory,
    Customer,
    Delivery,
    FeedbackEvent,
    FeedbackEventKind,
    FeedbackItem,
    FeedbackSource,
    FeedbackState,
    FeedbackTheme,
    LeaveReason,
    Product,
    Role,
    utcnow,
)
from bot.nlp.analysis import analyse

T, St = FeedbackTheme, FeedbackState
MAX_TEXT = 2000  # the customer's words, as the surveys and retention tables keep them
MAX_MESSAGE = 1000  # what we tell the customer: a chat message, like a campaign's
THEME_OF_CATEGORY = {
    ComplaintCategory.DELIVERY: T.DELIVERY,
    ComplaintCategory.BILLING: T.BILLING,
    ComplaintCategory.PRODUCT_QUALITY: T.PRODUCT_QUALITY,
    ComplaintCategory.SERVICE: T.SERVICE,
    ComplaintCategory.TECHNICAL: T.TECHNICAL,
}
THEME_OF_REASON = {
    LeaveReason.PRICE.value: T.PRICE,
    LeaveReason.COMPETITOR.value: T.COMPETITOR,
    LeaveReason.QUALITY.value: T.PRODUCT_QUALITY,
    LeaveReason.SERVICE.value: T.SERVICE,
    LeaveReason.NO_LONGER_NEEDED.value: T.NO_LONGER_NEEDED,
    LeaveReason.MOVING.value: T.MOVING,
}
STATE_ORDER = {St.NEW: 0, St.IN_PROGRESS: 1, St.DONE: 2}
SHOWN = 500


class FeedbackError(Exception):
    """The change is not allowed; the message says why, in words for the agent."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class NoSuchItem(FeedbackError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"There is no feedback item #{item_id}.", 404)


class StaleItem(FeedbackError):
    """The form was shown before someone else changed the item."""

    def __init__(self, changes: list[str]) -> None:
        super().__init__(
            "Someone changed this feedback after you opened it, so nothing was saved. "
            "Here is what changed; check it and try again.",
            409,
        )
        self.changes = changes


@dataclass(frozen=True)
class Reading:
    """What the text analysis finds in the words."""

    theme: FeedbackTheme
    product: str | None
    competitor: str | None


@dataclass(frozen=True)
class Viewer:
    """A console user as the Feedback page sees them."""

    id: int
    role: Role

    @property
    def leads(self) -> bool:
        return self.role in (Role.LEAD, Role.ADMIN)


@dataclass(frozen=True)
class Filters:
    """The Feedback page's filters, as typed in its query string (unknown values are ignored)."""

    theme: str = ""
    state: str = ""
    source: str = ""
    owner: str = ""  # "mine" | "nobody"
    told: str = ""  # "yes" | "no"

    @classmethod
    def parse(cls, query: dict[str, str]) -> Filters:
        def pick(name: str, allowed: Iterable[str]) -> str:
            value = query.get(name, "")
            return value if value in set(allowed) else ""

        return cls(
            theme=pick("theme", [t.value for t in T]),
            state=pick("state", [s.value for s in St]),
            source=pick("source", [s.value for s in FeedbackSource]),
            owner=pick("owner", ["mine", "nobody"]),
            told=pick("told", ["yes", "no"]),
        )


# ---- filing -------------------------------------------------------------------------------------


def read_words(text: str, product_names: Iterable[str] = (), leave_reason: str | None = None) -> Reading:
    """The theme of the words (a complaint category, else a competitor or a reason to leave, else
    the reason the customer gave when leaving), and the product and competitor named."""
    found = analyse(text, product_names)
    if found.category in THEME_OF_CATEGORY:
        theme = THEME_OF_CATEGORY[found.category]
    elif found.competitor:
        theme = T.COMPETITOR
    elif found.leave_reason in THEME_OF_REASON:
        theme = THEME_OF_REASON[found.leave_reason]
    else:
        theme = THEME_OF_REASON.get(leave_reason or "", T.OTHER)
    product = found.products[0][:120] if found.products else None
    return Reading(theme, product, found.competitor)


def product_names(session: Session) -> list[str]:
    return list(session.scalars(select(Product.name).where(Product.active.is_(True))))


def file_feedback(
    *,
    session: Session,
    customer_id: int,
    source: FeedbackSource,
    text: str,
    conversation_id: int | None = None,
    survey_id: int | None = None,
    retention_attempt_id: int | None = None,
    score: int | None = None,
    leave_reason: str | None = None,
    now: datetime | None = None,
) -> FeedbackItem | None:
    """Put the customer's words on the Feedback page, read for their theme; None when there are no
    words. A survey's comment is filed once."""
    words = (text or "").strip()[:MAX_TEXT]
    if not words:
        return None
    if survey_id is not None:
        filed = session.scalar(select(FeedbackItem).where(FeedbackItem.survey_id == survey_id))
        if filed is not None:
            return filed
    now = now or utcnow()
    reading = read_words(words, product_names(session), leave_reason)
    item = FeedbackItem(
        customer_id=customer_id,
        conversation_id=conversation_id,
        survey_id=survey_id,
        retention_attempt_id=retention_attempt_id,
        source=source,
        text=words,
        score=score,
        theme=reading.theme,
        product=reading.product,
        competitor=reading.competitor,
        state=St.NEW,
        created_at=now,
    )
    session.add(item)
    session.flush()
    _event(session, item, FeedbackEventKind.FILED, None, to_value=source.value, now=now)
    return item


def read_themes(*, session: Session, limit: int = 200) -> int:
    """Read the theme of items filed without one (copied by the migration); return how many."""
    unread = list(
        session.scalars(
            select(FeedbackItem).where(FeedbackItem.theme.is_(None)).order_by(FeedbackItem.id).limit(limit)
        )
    )
    if not unread:
        return 0
    names = product_names(session)
    for item in unread:
        reading = read_words(item.text, names)
        item.theme, item.product, item.competitor = reading.theme, reading.product, reading.competitor
    session.flush()
    return len(unread)


# ---- reading ------------------------------------------------------------------------------------


@dataclass
class ItemRow:
    id: int
    customer: str
    source: str
    text: str
    score: int | None
    theme: str
    product: str | None
    competitor: str | None
    state: str
    owner: str | None
    owner_id: int | None
    told_at: datetime | None
    created_at: datetime
    version: int


def items(*, session: Session, viewer: Viewer, filters: Filters, limit: int = SHOWN) -> list[ItemRow]:
    """The feedback the filters ask for, newest first."""
    query = select(FeedbackItem, Customer).join(Customer, Customer.id == FeedbackItem.customer_id)
    if filters.theme:
        query = query.where(FeedbackItem.theme == T(filters.theme))
    if filters.state:
        query = query.where(FeedbackItem.state == St(filters.state))
    if filters.source:
        query = query.where(FeedbackItem.source == FeedbackSource(filters.source))
    if filters.owner == "mine":
        query = query.where(FeedbackItem.owner_id == viewer.id)
    elif filters.owner == "nobody":
        query = query.where(FeedbackItem.owner_id.is_(None))
    if filters.told == "yes":
        query = query.where(FeedbackItem.customer_told_at.is_not(None))
    elif filters.told == "no":
        query = query.where(FeedbackItem.customer_told_at.is_(None))
    query = query.order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc()).limit(limit)
    names = agent_names(session)
    return [_row(item, customer, names) for item, customer in session.execute(query).tuples()]


def by_theme(rows: list[ItemRow]) -> list[tuple[str, list[ItemRow]]]:
    """The rows grouped by theme, the largest group of open items first; within a group new items
    first, then those in progress, then the done ones."""
    groups: dict[str, list[ItemRow]] = {}
    for row in rows:
        groups.setdefault(row.theme, []).append(row)
    for group in groups.values():
        group.sort(key=lambda r: STATE_ORDER[St(r.state)])  # stable: newest first within a state
    open_count = {theme: sum(r.state != St.DONE.value for r in group) for theme, group in groups.items()}
    return sorted(groups.items(), key=lambda kv: (-open_count[kv[0]], -len(kv[1]), kv[0]))


def _row(item: FeedbackItem, customer: Customer, names: dict[int, str]) -> ItemRow:
    return ItemRow(
        id=item.id,
        customer=customer.display_name,
        source=item.source.value,
        text=item.text,
        score=item.score,
        theme=(item.theme or T.OTHER).value,
        product=item.product,
        competitor=item.competitor,
        state=item.state.value,
        owner=names.get(item.owner_id) if item.owner_id else None,
        owner_id=item.owner_id,
        told_at=item.customer_told_at,
        created_at=item.created_at,
        version=item.version,
    )


def agent_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Agent.id, Agent.display_name)).tuples().all())


def people(*, session: Session) -> list[Agent]:
    """Who an item may be given to: active agents, leads and admins."""
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.active.is_(True), Agent.role.in_((Role.AGENT, Role.LEAD, Role.ADMIN)))
            .order_by(Agent.display_name)
        )
    )


def item_of(*, session: Session, item_id: int) -> FeedbackItem:
    item = session.get(FeedbackItem, item_id)
    if item is None:
        raise NoSuchItem(item_id)
    return item


def history(*, session: Session, item_id: int, after: int = 0) -> list[FeedbackEvent]:
    return list(
        session.scalars(
            select(FeedbackEvent)
            .where(FeedbackEvent.item_id == item_id, FeedbackEvent.id > after)
            .order_by(FeedbackEvent.id)
        )
    )


def describe(event: FeedbackEvent, names: dict[int, str]) -> str:
    """One history line in words (plain text: the page escapes it)."""
    who = names.get(event.agent_id or 0, "Someone")
    k = FeedbackEventKind
    if event.kind is k.FILED:
        return f"Filed from {_words(FeedbackSource, event.to_value)}"
    if event.kind is k.STATE:
        return f"{who}: {_words(St, event.from_value)} → {_words(St, event.to_value)}"
    if event.kind is k.OWNER:
        return f"{who}: owner {_person(names, event.from_value)} → {_person(names, event.to_value)}"
    return f"{who} told the customer: {event.text or ''}"


def _words(vocabulary: Any, value: str | None) -> str:
    try:
        return label(vocabulary(value or ""))
    except ValueError:
        return value or "?"


def _person(names: dict[int, str], value: str | None) -> str:
    return names.get(int(value), "nobody") if value and value.isdigit() else "nobody"


def told_key(item_id: int) -> str:
    """The one delivery that tells the customer what changed after this item."""
    return f"case_update:feedback:{item_id}:told"


def delivery_of(*, session: Session, item_id: int) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.idempotency_key == told_key(item_id)))


# ---- changing -----------------------------------------------------------------------------------


def _event(
    session: Session,
    item: FeedbackItem,
    kind: FeedbackEventKind,
    agent_id: int | None,
    *,
    from_value: str | None = None,
    to_value: str | None = None,
    text: str | None = None,
    now: datetime,
) -> FeedbackEvent:
    event = FeedbackEvent(
        item_id=item.id,
        kind=kind,
        agent_id=agent_id,
        from_value=from_value,
        to_value=to_value,
        text=text,
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


def _check_version(session: Session, item: FeedbackItem, version: int | None, seen: int) -> None:
    """Refuse a form made from an older version of the item, saying what changed since."""
    if version is None or version == item.version:
        return
    raise StaleItem(changes_since(session=session, item_id=item.id, seen=seen))


def changes_since(*, session: Session, item_id: int, seen: int) -> list[str]:
    names = agent_names(session)
    return [describe(e, names) for e in history(session=session, item_id=item_id, after=seen)] or [
        "The item was changed."
    ]


def _may_work(viewer: Viewer, item: FeedbackItem) -> None:
    if viewer.leads or item.owner_id == viewer.id:
        return
    if item.owner_id is None:
        raise FeedbackError("Take it first: nobody owns this feedback yet.", 409)
    raise FeedbackError("Someone else owns this feedback: ask them or a lead to pass it on.", 409)


def _set_owner(
    session: Session, item: FeedbackItem, owner_id: int | None, viewer: Viewer, now: datetime
) -> None:
    if owner_id == item.owner_id:
        return
    _event(
        session,
        item,
        FeedbackEventKind.OWNER,
        viewer.id,
        from_value=str(item.owner_id) if item.owner_id else None,
        to_value=str(owner_id) if owner_id else None,
        now=now,
    )
    item.owner_id = owner_id


def _set_state(
    session: Session, item: FeedbackItem, state: FeedbackState, viewer: Viewer, now: datetime
) -> None:
    if state is item.state:
        return
    _event(
        session,
        item,
        FeedbackEventKind.STATE,
        viewer.id,
        from_value=item.state.value,
        to_value=state.value,
        now=now,
    )
    item.state = state


def take(
    *,
    session: Session,
    viewer: Viewer,
    item_id: int,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> int:
    """Become the item's owner; a new item is in progress from now on. Return the new version."""
    now = now or utcnow()
    item = item_of(session=session, item_id=item_id)
    _check_version(session, item, version, seen)
    if item.owner_id not in (None, viewer.id) and not viewer.leads:
        raise FeedbackError("Someone else owns this feedback: ask them or a lead to pass it on.", 409)
    _set_owner(session, item, viewer.id, viewer, now)
    if item.state is St.NEW:
        _set_state(session, item, St.IN_PROGRESS, viewer, now)
    session.flush()
    return item.version


def assign(
    *,
    session: Session,
    viewer: Viewer,
    item_id: int,
    owner_id: int | None,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> int:
    """Give the item to someone (or to nobody). Anyone may give an item nobody owns; an owned one is
    passed on by its owner, a lead or an admin."""
    now = now or utcnow()
    item = item_of(session=session, item_id=item_id)
    _check_version(session, item, version, seen)
    if item.owner_id is not None:
        _may_work(viewer, item)
    if owner_id is not None and owner_id not in {a.id for a in people(session=session)}:
        raise FeedbackError("Choose the person from the list.")
    _set_owner(session, item, owner_id, viewer, now)
    session.flush()
    return item.version


def move(
    *,
    session: Session,
    viewer: Viewer,
    item_id: int,
    state: str,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> int:
    """Set the item's state (new, in progress, done)."""
    now = now or utcnow()
    item = item_of(session=session, item_id=item_id)
    try:
        to = St(state)
    except ValueError:
        raise FeedbackError("Choose the state: new, in progress or done.") from None
    _check_version(session, item, version, seen)
    _may_work(viewer, item)
    _set_state(session, item, to, viewer, now)
    session.flush()
    return item.version


def check_message(text: str) -> str:
    """The message as it will be sent, or FeedbackError saying what is wrong with it."""
    message = text.strip()
    if not message:
        raise FeedbackError("Write the message the customer will read.")
    if len(message) > MAX_MESSAGE:
        raise FeedbackError(f"The message is {len(message):,} characters long: at most {MAX_MESSAGE:,}.")
    return message


def tell_customer(
    *,
    session: Session,
    viewer: Viewer,
    item_id: int,
    message: str,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> int:
    """Send the customer a personal message about what we changed, once per item, as a service
    message through the policy gate; the item is marked told (who, when) and done."""
    now = now or utcnow()
    item = item_of(session=session, item_id=item_id)
    if item.customer_told_at is not None:
        who = agent_names(session).get(item.customer_told_by or 0, "someone")
        when = item.customer_told_at.strftime("%Y-%m-%d %H:%M")
        raise FeedbackError(f"The customer was already told, by {who} at {when} UTC: it goes once.", 409)
    text = check_message(message)
    _check_version(session, item, version, seen)
    _may_work(viewer, item)
    queue_personal_message(
        session=session,
        customer_id=item.customer_id,
        complaint_id=None,
        key=told_key(item.id),
        text=text,
        now=now,
    )
    _event(session, item, FeedbackEventKind.TOLD, viewer.id, text=text, now=now)
    item.customer_told_at, item.customer_told_by = now, viewer.id
    _set_state(session, item, St.DONE, viewer, now)
    session.flush()
    return item.version
