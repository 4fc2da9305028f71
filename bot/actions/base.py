"""What every CareLoop action shares: settings, the CRM, the customer behind a tracker, observation."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.crm import temperament
from bot.crm.complaints import open_complaints
from bot.crm.db import session_scope
from bot.crm.models import Conversation, Customer, Product
from bot.crm.queries import InvalidSenderId, ensure_conversation, get_or_create_customer, log_interaction
from bot.nlp.analysis import Analysis, analyse
from bot.settings import Settings

log = logging.getLogger(__name__)
PAYLOAD_EXTRACTORS = (None, "", "RegexMessageHandler")  # who "extracted" a button payload's entities


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    """The action server's settings, read once on first use (never at import)."""
    from bot.bootstrap import load_settings

    return load_settings()


@contextmanager
def crm_session() -> Iterator[Session]:
    """A short CRM transaction for one action run."""
    with session_scope(current_settings().database_url) as session:
        yield session


def latest_intent(tracker: Tracker) -> tuple[str | None, float | None]:
    """The intent and confidence of the customer's latest message."""
    intent: dict[str, Any] = tracker.latest_message.get("intent") or {}
    confidence = intent.get("confidence")
    return intent.get("name"), float(confidence) if confidence is not None else None


def latest_text(tracker: Tracker) -> str:
    text = tracker.latest_message.get("text") or ""
    return "" if text.startswith("/") else text  # a button payload is not the customer's words


@dataclass
class Turn:
    """One action run: the CRM session, who is talking, and what their message says."""

    session: Session
    customer: Customer
    conversation: Conversation
    tracker: Tracker
    analysis: Analysis
    created: bool  # the customer's first contact: created during this turn

    def entity(self, name: str) -> str | None:
        value = next(self.tracker.get_latest_entity_values(name), None)
        return str(value) if value is not None else None

    def chosen(self, name: str) -> str | None:
        """An entity the customer chose with a button: a payload's entities name Rasa's payload
        parser as their extractor (or none at all, as Rasa's test stories give them). Typed text
        never reaches Rasa as a payload: the gateway strips a leading slash (limits.for_rasa)."""
        for entity in self.tracker.latest_message.get("entities") or []:
            chosen = entity.get("entity") == name and entity.get("extractor") in PAYLOAD_EXTRACTORS
            if chosen and entity.get("value") is not None:
                return str(entity["value"])
        return None


def product_names(session: Session) -> list[str]:
    return list(session.scalars(select(Product.name).where(Product.active.is_(True))))


def open_turn(session: Session, tracker: Tracker) -> Turn:
    """Find (or create) the customer behind the tracker and analyse their latest message."""
    metadata = tracker.get_slot("session_started_metadata") or {}
    customer, created = get_or_create_customer(
        session=session,
        sender_id=tracker.sender_id,
        first_name=clean_name(metadata.get("first_name")),
        last_name=clean_name(metadata.get("last_name")),
        language=metadata.get("language") if isinstance(metadata.get("language"), str) else None,
    )
    conversation = ensure_conversation(session=session, sender_id=tracker.sender_id, customer=customer)
    text = latest_text(tracker)
    return Turn(session, customer, conversation, tracker, analyse(text, product_names(session)), created)


def observe(turn: Turn) -> None:
    """Log the message's intent and behaviour cues, and update the temperament (once per message)."""
    if turn.tracker.latest_action_name != "action_listen":
        return
    intent, confidence = latest_intent(turn.tracker)
    cues = temperament.cues_in(latest_text(turn.tracker), anger=turn.analysis.anger)
    log_interaction(
        session=turn.session,
        customer=turn.customer,
        conversation=turn.conversation,
        kind="behaviour",
        intent=intent,
        confidence=confidence,
        data={"cues": cues},
    )
    temperament.infer(session=turn.session, customer=turn.customer)


def context_slots(turn: Turn) -> list[EventType]:
    """The slots every response may use to be personal."""
    cases = open_complaints(session=turn.session, customer_id=turn.customer.id)
    return [
        SlotSet("customer_id", float(turn.customer.id)),
        SlotSet("customer_name", turn.customer.first_name),
        SlotSet("segment", turn.customer.segment.value),
        SlotSet("temperament", turn.customer.temperament.value),
        SlotSet("open_case", str(cases[-1].id) if cases else None),
        SlotSet("system_trouble", False),
    ]


def clean_name(value: object) -> str | None:
    """A display name from channel metadata, trimmed to something safe to store and show."""
    if not isinstance(value, str):
        return None
    name = "".join(ch for ch in value.strip() if ch.isprintable())[:80]
    return name or None


class CareLoopAction(Action, abc.ABC):
    """Base for actions; abstract so that rasa_sdk does not register it."""

    @abc.abstractmethod
    def name(self) -> str: ...


class CRMAction(CareLoopAction, abc.ABC):
    """An action that works on the CRM for the customer behind the tracker.

    Subclasses implement `act`. The CRM work runs in a worker thread (it is blocking I/O) inside
    one transaction; if the CRM cannot be reached the action sets `system_trouble`, which the
    responses turn into an honest "I can't reach our systems" instead of a backend error.
    """

    @abc.abstractmethod
    def act(self, turn: Turn) -> list[EventType]: ...

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        """Events that keep the conversation on track when the CRM is unavailable."""
        return []

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        try:
            return await asyncio.to_thread(self._run_in_crm, tracker)
        except InvalidSenderId:
            log.warning(
                "%s: sender id %r is not <channel>:<id>; CRM not used", self.name(), tracker.sender_id
            )
        except SQLAlchemyError:
            log.exception("%s: CRM unavailable for sender %s", self.name(), tracker.sender_id)
        return [SlotSet("system_trouble", True), *self.on_trouble(tracker)]

    def _run_in_crm(self, tracker: Tracker) -> list[EventType]:
        with crm_session() as session:
            turn = open_turn(session, tracker)
            observe(turn)
            events = self.act(turn)
            return [*context_slots(turn), *events]
