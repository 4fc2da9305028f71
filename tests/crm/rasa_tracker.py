"""Rasa's SQL tracker store as Rasa 3.6 writes it (rasa/core/tracker_store.py, SQLTrackerStore):
one `events` row per event, its `as_dict()` as JSON in `data`, the user event's intent and the
action's name copied into columns. Customer messages carry the gateway's `careloop_message_id`."""

from __future__ import annotations

import json
import sqlite3
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bot.crm.models import (
    Author,
    Channel,
    Conversation,
    Direction,
    InboundStatus,
    Message,
    OutboundStatus,
)
from tests.factories import make_customer

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL,"
    " type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255),"
    " data TEXT)"
)
START = 1_780_000_000.0  # 2026-05-28
MISREAD = "<script>window.x=1</script> it broke, I'm Ulla, ulla@mail.example"


class RasaTrackerStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock = count()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(SCHEMA)
            db.execute("CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def _add(
        self, sender_id: str, data: dict[str, Any], intent: str | None = None, action: str | None = None
    ) -> int:
        data = {"timestamp": START + next(self._clock), **data}
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (sender_id, data["event"], data["timestamp"], intent, action, json.dumps(data)),
            )
            return int(cursor.lastrowid or 0)

    def session_started(self, sender_id: str) -> None:
        self._add(
            sender_id, {"event": "action", "name": "action_session_start"}, action="action_session_start"
        )
        self._add(sender_id, {"event": "session_started"})
        self.action(sender_id, "action_listen")

    def user(
        self,
        sender_id: str,
        text: str,
        *,
        message_id: int | None,
        intent: str,
        confidence: float,
        ranking: list[tuple[str, float]] | None = None,
        votes: dict[str, tuple[str, float]] | None = None,
        faq_key: str | None = None,
    ) -> int:
        """A customer message and Rasa's parse of it (as UserUttered.as_dict())."""
        ranking = ranking or [(intent, confidence)]
        parse: dict[str, Any] = {
            "intent": {"name": intent, "confidence": confidence},
            "entities": [],
            "text": text,
            "message_id": None,
            "metadata": {},
            "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        }
        if votes is not None:
            parse["intent_votes"] = {k: {"name": n, "confidence": c} for k, (n, c) in votes.items()}
        if faq_key:
            parse["response_selector"] = {
                "all_retrieval_intents": ["faq"],
                "faq": {"response": {"intent_response_key": faq_key, "confidence": 0.9}, "ranking": []},
            }
        metadata = {} if message_id is None else {"careloop_message_id": message_id}
        data = {
            "event": "user",
            "text": text,
            "parse_data": parse,
            "input_channel": "web",
            "metadata": metadata,
        }
        return self._add(sender_id, data, intent=intent)

    def action(self, sender_id: str, name: str) -> None:
        self._add(sender_id, {"event": "action", "name": name, "policy": "RulePolicy"}, action=name)

    def turn(
        self,
        sender_id: str,
        text: str,
        *,
        message_id: int | None,
        intent: str,
        confidence: float,
        answer: str = "utter_ok",
        **parse: Any,
    ) -> int:
        """A message the bot answered: the user event, the answer, and Rasa listening again."""
        event_id = self.user(
            sender_id, text, message_id=message_id, intent=intent, confidence=confidence, **parse
        )
        self.action(sender_id, answer)
        self._add(sender_id, {"event": "bot", "text": "…", "data": {}})
        self.action(sender_id, "action_listen")
        return event_id


class Chat:
    """A customer's conversation in the CRM transcript and in Rasa's tracker store."""

    def __init__(self, session: Session, tracker: RasaTrackerStore, **customer: Any) -> None:
        self.session, self.tracker = session, tracker
        self.customer = make_customer(session, **customer)
        self.sender_id = f"web:{self.customer.id}-visitor"
        self.conversation = Conversation(
            sender_id=self.sender_id, customer_id=self.customer.id, channel=Channel.WEB
        )
        session.add(self.conversation)
        session.flush()
        tracker.session_started(self.sender_id)

    def line(self, author: Author, text: str) -> Message:
        inbound = author == Author.CUSTOMER
        message = Message(
            conversation_id=self.conversation.id,
            direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
            author=author,
            text=text,
            delivery_status=InboundStatus.PROCESSED if inbound else OutboundStatus.SENT,
        )
        self.session.add(message)
        self.session.flush()
        return message

    def says(
        self, text: str, intent: str, confidence: float, *, answer: str = "utter_ok", **parse: Any
    ) -> Message:
        """The customer's message, Rasa's reading of it, and the bot's answer."""
        message = self.line(Author.CUSTOMER, text)
        self.tracker.turn(
            self.sender_id,
            text,
            message_id=message.id,
            intent=intent,
            confidence=confidence,
            answer=answer,
            **parse,
        )
        self.line(Author.BOT, f"(answer to {text})")
        return message


def a_misread_message(session: Session, tracker_db: Path) -> int:
    """A customer message Rasa fell back on, in the transcript and in Rasa's tracker store (committed);
    the customer is Ulla, ulla@mail.example."""
    chat = Chat(session, RasaTrackerStore(tracker_db), first_name="Ulla", email="ulla@mail.example")
    chat.line(Author.CUSTOMER, "hello")
    chat.line(Author.BOT, "Hi! How can I help?")
    message = chat.says(
        MISREAD,
        "nlu_fallback",
        0.4,
        answer="action_clarify",
        ranking=[("nlu_fallback", 0.4), ("give_feedback", 0.35), ("complain", 0.3)],
    )
    session.commit()
    return message.id
