"""Learning from live chats: find the customer messages the bot misread or was unsure about, let an
admin confirm or correct each reading, and export the decisions as NLU training data.

Where the bot's reading of each message lives: Rasa's SQL tracker store (RASA_TRACKER_DB, a
SQLite file that endpoints.yml gives Rasa). Every `user` event there holds the parse — intent,
confidence, ranking, the blended classifier's `intent_votes`, the retrieval intent's full name —
and the gateway's `careloop_message_id` in its metadata, which ties it to the transcript row
(`message`). The actions' `behaviour` events in the CRM hold intent and confidence too, but only
for turns that ran a CRM action: not for a fallback (action_clarify touches no CRM), which is what
this page is for. So `collect` reads the tracker store from where it stopped last time
(`nlu_review_state`) and keeps one `nlu_review` row per message worth a look:

- not understood: the intent was `nlu_fallback`, or the dialogue fell back (the first action after
  the message was `action_default_fallback` or config.yml's `core_fallback_action_name`);
- unsure: the intent's confidence is below NLU_REVIEW_CONFIDENCE;
- then asked for a person: the customer's next message in the same session was `request_human`.

Only messages the bot answered count: while a person has the conversation (Rasa paused), and for
messages added to the tracker late, nothing was predicted. Button presses (`/intent` payloads) and
the scheduler's EXTERNAL_* intents are not the customer's words and are never listed. There is no
per-message thumbs-down in the widget or on Telegram; the CSAT survey rates a whole handoff or
case, not one reading, so it is not used here.

The words are read from the transcript when shown or exported, never copied: erasing a customer
empties them here too. Export: `bot.crm.nlu_export`; command line: `python -m bot.crm.nlu_review
collect|export`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.crm.db import rows_changed
from bot.crm.models import Agent, Author, Message, NluReview, NluReviewState, utcnow
from bot.crm.models.review import DECISION_LABELS, REASON_LABELS, ReviewDecision, ReviewReason
from bot.crm.queries import record_audit

log = logging.getLogger(__name__)

MESSAGE_ID_KEY = "careloop_message_id"  # bot.gateway.rasa_client.MESSAGE_ID_KEY
FALLBACK_INTENT = "nlu_fallback"
HANDOFF_INTENT = "request_human"
DEFAULT_FALLBACK_ACTION = "action_default_fallback"
RETRIEVAL_INTENT = "faq"
OUT_OF_SCOPE = "out_of_scope"
CONTEXT = 3  # transcript lines shown before and after a message
RANKING = 5  # alternatives kept from Rasa's ranking
PAGE = 50  # messages shown per tab


class ReviewError(Exception):
    """A decision that cannot be taken; the message is for the admin."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Reading:
    """Rasa's reading of one customer message, from its `user` event."""

    event_id: int
    message_id: int
    intent: str | None  # the best real intent (under nlu_fallback: what it would have been)
    confidence: float | None
    fell_back: bool
    ranking: list[dict[str, Any]]
    votes: dict[str, Any]
    read_at: datetime


@dataclass(frozen=True)
class Vocabulary:
    """What a reading may be corrected to, from domain.yml and the NLU data."""

    intents: tuple[str, ...]
    entities: frozenset[str]


# --- reading Rasa's tracker store -------------------------------------------------------------


@contextmanager
def tracker_store(path: Path) -> Iterator[sqlite3.Connection | None]:
    """Rasa's tracker store, read-only (None when Rasa has not written it yet)."""
    if not path.exists():
        yield None
        return
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone():
            yield db
        else:
            yield None


def reading_of(event_id: int, data: str) -> Reading | None:
    """The reading in a stored `user` event; None unless it is a customer's own typed message."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    metadata = event.get("metadata") or {}
    message_id = metadata.get(MESSAGE_ID_KEY) if isinstance(metadata, dict) else None
    text = event.get("text") or ""
    if not isinstance(message_id, int) or not isinstance(text, str) or text.lstrip().startswith("/"):
        return None
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    ranking: list[dict[str, Any]] = [
        {"intent": str(r.get("name")), "confidence": _number(r.get("confidence"))}
        for r in parse.get("intent_ranking") or []
        if isinstance(r, dict) and r.get("name") and r.get("name") != FALLBACK_INTENT
    ][:RANKING]
    if not ranking and intent.get("name") and intent.get("name") != FALLBACK_INTENT:
        ranking = [{"intent": str(intent["name"]), "confidence": _number(intent.get("confidence"))}]
    if ranking and ranking[0]["intent"] == RETRIEVAL_INTENT:
        ranking[0]["intent"] = _retrieval_intent(parse) or RETRIEVAL_INTENT
    timestamp = event.get("timestamp")
    return Reading(
        event_id=event_id,
        message_id=message_id,
        intent=ranking[0]["intent"] if ranking else None,
        confidence=ranking[0]["confidence"] if ranking else None,
        fell_back=intent.get("name") == FALLBACK_INTENT,
        ranking=ranking,
        votes=_votes(parse.get("intent_votes")),
        read_at=datetime.fromtimestamp(timestamp, timezone.utc)
        if isinstance(timestamp, int | float)
        else utcnow(),
    )


def _number(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, int | float) else None


def _retrieval_intent(parse: dict[str, Any]) -> str | None:
    """`faq/<topic>`: the ResponseSelector's pick, the intent a training example must name."""
    selected = ((parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}).get("response") or {}
    key = selected.get("intent_response_key")
    return key if isinstance(key, str) and key.startswith(f"{RETRIEVAL_INTENT}/") else None


def _votes(raw: Any) -> dict[str, Any]:
    """Each classifier's own top intent (bot.nlu.blended_classifier), as {name: {intent, confidence}}."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): {"intent": str(vote.get("name")), "confidence": _number(vote.get("confidence"))}
        for name, vote in raw.items()
        if isinstance(vote, dict) and vote.get("name")
    }


def _next_action(db: sqlite3.Connection, sender_id: str, event_id: int) -> str | None:
    """The first action Rasa ran after this message; None if it ran none (paused, or added late)."""
    row = db.execute(
        "SELECT type_name, action_name FROM events WHERE sender_id = ? AND id > ?"
        " AND type_name IN ('user', 'action') ORDER BY id LIMIT 1",
        (sender_id, event_id),
    ).fetchone()
    return row[1] if row and row[0] == "action" else None


def _previous_reading(db: sqlite3.Connection, sender_id: str, event_id: int) -> Reading | None:
    """The customer's message before this one in the same session, if it was a typed one."""
    row = db.execute(
        "SELECT id, type_name, data FROM events WHERE sender_id = ? AND id < ?"
        " AND type_name IN ('user', 'session_started') ORDER BY id DESC LIMIT 1",
        (sender_id, event_id),
    ).fetchone()
    return reading_of(row[0], row[2]) if row and row[1] == "user" else None


# --- collecting what to review ------------------------------------------------------------------


def claim_state(session: Session) -> NluReviewState:
    """The reading position, written first: a second reader or exporter waits for this one."""
    now = utcnow()
    claimed = session.execute(update(NluReviewState).where(NluReviewState.id == 1).values(scanned_at=now))
    if not rows_changed(claimed):
        session.add(NluReviewState(id=1, tracker_event_id=0, scanned_at=now))
        session.flush()
    return session.get_one(NluReviewState, 1, populate_existing=True)


def collect(session: Session, *, tracker_db: Path, threshold: float, fallback_actions: frozenset[str]) -> int:
    """Read the tracker store's new events and keep the messages worth a look; return how many
    messages were added or got another reason."""
    state = claim_state(session)
    with tracker_store(tracker_db) as db:
        if db is None:
            return 0
        last = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        if state.tracker_event_id > last:  # the tracker store was started afresh
            state.tracker_event_id = 0
        found: dict[int, tuple[Reading, set[ReviewReason]]] = {}
        rows = db.execute(
            "SELECT id, sender_id, intent_name, data FROM events"
            " WHERE type_name = 'user' AND id > ? AND id <= ? ORDER BY id",
            (state.tracker_event_id, last),
        )
        for event_id, sender_id, intent_name, data in rows.fetchall():
            action = _next_action(db, sender_id, event_id)
            if action is None:
                continue  # the bot did not answer it: a person had the conversation
            reading = reading_of(event_id, data)
            if reading is not None:
                reasons = _doubts(reading, action, threshold, fallback_actions)
                if reasons:
                    _note(found, reading, reasons)
            if intent_name == HANDOFF_INTENT:
                before = _previous_reading(db, sender_id, event_id)
                if before is not None and before.intent != HANDOFF_INTENT:
                    _note(found, before, {ReviewReason.BEFORE_HANDOFF})
        state.tracker_event_id = last
    return sum(_keep(session, reading, reasons) for reading, reasons in found.values())


def _doubts(
    reading: Reading, action: str, threshold: float, fallback_actions: frozenset[str]
) -> set[ReviewReason]:
    if reading.fell_back or action in fallback_actions:
        return {ReviewReason.FALLBACK}
    if reading.confidence is not None and reading.confidence < threshold:
        return {ReviewReason.LOW_CONFIDENCE}
    return set()


def _note(
    found: dict[int, tuple[Reading, set[ReviewReason]]], reading: Reading, reasons: set[ReviewReason]
) -> None:
    earlier = found.get(reading.message_id)
    found[reading.message_id] = (reading, reasons | (earlier[1] if earlier else set()))


def _keep(session: Session, reading: Reading, reasons: set[ReviewReason]) -> bool:
    """Add the message for review, or add reasons to its row; False if nothing changed."""
    message = session.get(Message, reading.message_id)
    if message is None or message.author != Author.CUSTOMER or not message.text:
        return False  # not ours (another CRM's tracker), or erased
    row = session.scalar(select(NluReview).where(NluReview.message_id == reading.message_id))
    if row is None:
        session.add(
            NluReview(
                message_id=reading.message_id,
                reasons=_joined(reasons),
                intent=reading.intent,
                confidence=reading.confidence,
                ranking=reading.ranking,
                votes=reading.votes,
                read_at=reading.read_at,
            )
        )
        session.flush()
        return True
    merged = _joined(reasons | set(_reasons(row.reasons)))
    if merged == row.reasons:
        return False
    row.reasons = merged
    return True


def _joined(reasons: set[ReviewReason]) -> str:
    return ",".join(r.value for r in ReviewReason if r in reasons)


def _reasons(joined: str) -> list[ReviewReason]:
    return [ReviewReason(value) for value in joined.split(",") if value]


# --- what the page shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    author: str
    text: str
    current: bool = False


@dataclass
class Item:
    """One message as the review page shows it."""

    id: int
    message_id: int
    conversation_id: int
    text: str
    reasons: list[str]
    intent: str | None
    confidence: float | None
    ranking: list[dict[str, Any]]
    votes: dict[str, Any]
    read_at: datetime
    context: list[Line] = field(default_factory=list)
    decision: str | None = None
    chosen_intent: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    exported_at: datetime | None = None
    export_file: str | None = None

    @property
    def alternatives(self) -> list[str]:
        """Rasa's runners-up, then out_of_scope: the one-click corrections."""
        names = [r["intent"] for r in self.ranking if r["intent"] != self.intent][:2]
        return names if OUT_OF_SCOPE in names or self.intent == OUT_OF_SCOPE else [*names, OUT_OF_SCOPE]


def to_review(*, session: Session, limit: int = PAGE) -> list[Item]:
    """Messages waiting for a decision, newest first."""
    return _items(session, NluReview.decision.is_(None), NluReview.read_at.desc(), limit)


def reviewed(*, session: Session, limit: int = PAGE) -> list[Item]:
    """Decided messages, the most recent decision first."""
    return _items(session, NluReview.decision.is_not(None), NluReview.reviewed_at.desc(), limit)


def waiting(*, session: Session) -> tuple[int, int]:
    """How many messages wait for a decision, and how many decisions wait for an export."""
    rows = session.execute(
        select(NluReview.decision, NluReview.exported_at)
        .join(Message, Message.id == NluReview.message_id)
        .where(Message.text.is_not(None))
    ).all()
    undecided = sum(1 for decision, _ in rows if decision is None)
    unexported = sum(1 for decision, exported in rows if decision in EXPORTED and exported is None)
    return undecided, unexported


EXPORTED = (ReviewDecision.CONFIRMED, ReviewDecision.CORRECTED)


def _items(session: Session, where: Any, order: Any, limit: int) -> list[Item]:
    rows = session.execute(
        select(NluReview, Message, Agent.display_name)
        .join(Message, Message.id == NluReview.message_id)
        .outerjoin(Agent, Agent.id == NluReview.reviewed_by)
        .where(where, Message.text.is_not(None))
        .order_by(order, NluReview.id.desc())
        .limit(limit)
    ).all()
    return [_item(session, row, message, reviewer) for row, message, reviewer in rows]


def _item(session: Session, row: NluReview, message: Message, reviewer: str | None) -> Item:
    return Item(
        id=row.id,
        message_id=message.id,
        conversation_id=message.conversation_id,
        text=message.text or "",
        reasons=[REASON_LABELS[r] for r in _reasons(row.reasons)],
        intent=row.intent,
        confidence=row.confidence,
        ranking=list(row.ranking or []),
        votes=dict(row.votes or {}),
        read_at=row.read_at,
        context=_context(session, message),
        decision=DECISION_LABELS[row.decision] if row.decision else None,
        chosen_intent=row.chosen_intent,
        reviewed_by=reviewer,
        reviewed_at=row.reviewed_at,
        exported_at=row.exported_at,
        export_file=row.export_file,
    )


def _context(session: Session, message: Message) -> list[Line]:
    """The transcript around the message: a few lines before and after it."""
    same = Message.conversation_id == message.conversation_id
    before = session.scalars(
        select(Message).where(same, Message.id < message.id).order_by(Message.id.desc()).limit(CONTEXT)
    ).all()
    after = session.scalars(
        select(Message).where(same, Message.id > message.id).order_by(Message.id).limit(CONTEXT)
    ).all()
    lines = [Line(m.author.value, m.text or "") for m in reversed(before)]
    lines.append(Line(message.author.value, message.text or "", current=True))
    return lines + [Line(m.author.value, m.text or "") for m in after]


# --- decisions ----------------------------------------------------------------------------------


def decide(
    *, session: Session, review_id: int, intent: str | None, agent_id: int, vocabulary: Vocabulary
) -> ReviewDecision:
    """Confirm or correct the reading (`intent`), or leave the message out of training (None)."""
    row = _open_row(session, review_id)
    if intent is not None and intent not in vocabulary.intents:
        raise ReviewError(f"“{intent}” is not an intent of the assistant: choose one from the list")
    if intent is None:
        decision = ReviewDecision.LEFT_OUT
    else:
        decision = ReviewDecision.CONFIRMED if intent == row.intent else ReviewDecision.CORRECTED
    row.decision, row.chosen_intent = decision, intent
    row.reviewed_by, row.reviewed_at = agent_id, utcnow()
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action=f"nlu_review_{decision.value}",
        entity="nlu_review",
        entity_id=row.id,
        details={"intent": intent} if intent else {},
    )
    return decision


def reopen(*, session: Session, review_id: int, agent_id: int) -> None:
    """Put a decided, not yet exported message back on the list to review."""
    row = _open_row(session, review_id)
    if row.decision is None:
        return
    row.decision = row.chosen_intent = row.reviewed_by = row.reviewed_at = None
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action="nlu_review_reopened",
        entity="nlu_review",
        entity_id=row.id,
    )


def _open_row(session: Session, review_id: int) -> NluReview:
    row = session.get(NluReview, review_id, with_for_update=True)
    if row is None:
        raise LookupError(f"There is no message {review_id} to review.")
    if row.exported_at is not None:
        where = (
            f"in {row.export_file}"
            if row.export_file
            else "(its words were known: training or held-out data)"
        )
        raise ReviewError(f"This message is already exported {where}: change it in that file instead")
    return row


# --- the assistant's vocabulary -----------------------------------------------------------------


def vocabulary(project_root: Path) -> Vocabulary:
    """The intents an admin may choose (domain.yml's, EXTERNAL_* excepted, `faq` by topic, and
    out_of_scope) and the domain's entities; re-read when the files change."""
    domain = project_root / "domain.yml"
    data = sorted((project_root / "data").rglob("*.yml"))
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in [domain, *data] if p.exists())
    return _vocabulary(stamp)


@lru_cache(maxsize=4)
def _vocabulary(stamp: tuple[tuple[str, int], ...]) -> Vocabulary:
    yaml = YAML(typ="safe")
    domain_path, *data_paths = (Path(path) for path, _ in stamp)
    domain = yaml.load(domain_path.read_text(encoding="utf-8")) or {}
    names = [next(iter(i)) if isinstance(i, dict) else str(i) for i in domain.get("intents") or []]
    topics = set(_faq_topics(domain))
    for path in data_paths:
        try:
            topics |= set(_faq_topics(yaml.load(path.read_text(encoding="utf-8")) or {}))
        except Exception as error:  # noqa: BLE001 - ruamel raises many kinds; one bad file must not hide the rest
            log.warning("nlu review: could not read %s (%s)", path, type(error).__name__)
    intents: list[str] = []
    for name in names:
        if name.startswith("EXTERNAL_"):
            continue
        if name == RETRIEVAL_INTENT and topics:
            intents += [f"{RETRIEVAL_INTENT}/{t}" for t in sorted(topics)]
        else:
            intents.append(name)
    if OUT_OF_SCOPE not in intents:
        intents.append(OUT_OF_SCOPE)
    entities = {next(iter(e)) if isinstance(e, dict) else str(e) for e in domain.get("entities") or []}
    return Vocabulary(tuple(intents), frozenset(entities))


def _faq_topics(content: Any) -> list[str]:
    responses = content.get("responses") if isinstance(content, dict) else None
    prefix = f"utter_{RETRIEVAL_INTENT}/"
    return [key[len(prefix) :] for key in responses or {} if isinstance(key, str) and key.startswith(prefix)]


def fallback_actions(project_root: Path) -> frozenset[str]:
    """The actions a dialogue fallback runs: Rasa's default and config.yml's own, if it names one."""
    config = YAML(typ="safe").load((project_root / "config.yml").read_text(encoding="utf-8")) or {}
    named = {
        str(p["core_fallback_action_name"])
        for p in config.get("policies") or []
        if isinstance(p, dict) and p.get("core_fallback_action_name")
    }
    return frozenset({DEFAULT_FALLBACK_ACTION, *named})


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bot.crm.nlu_review collect|export`: read new chats, or export the decisions."""
    import argparse

    from bot.bootstrap import bootstrap
    from bot.crm.db import session_scope
    from bot.crm.nlu_export import export
    from bot.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m bot.crm.nlu_review", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("collect", "export"))
    args = parser.parse_args(argv)
    settings = bootstrap(command=True)
    with session_scope(settings.database_url) as session:
        found = collect(
            session,
            tracker_db=settings.rasa_tracker_db,
            threshold=settings.nlu_review_confidence,
            fallback_actions=fallback_actions(PROJECT_ROOT),
        )
    if args.command == "collect":
        print(f"{found} message(s) added for review")
        return
    with session_scope(settings.database_url) as session:
        result = export(
            session=session,
            directory=settings.nlu_review_dir,
            known_data=[PROJECT_ROOT / "data", PROJECT_ROOT / "tests" / "nlu"],
            entities=vocabulary(PROJECT_ROOT).entities,
            actor="cli",
        )
    print(result.summary())
    if result.file:
        print(settings.nlu_review_dir / result.file)


if __name__ == "__main__":
    main()
