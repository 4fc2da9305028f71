"""Contact details, delivery address, name and marketing consent: validated, confirmed, audited."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from bot.actions.base import CRMAction, Turn, crm_session, current_settings, latest_intent, latest_text
from bot.crm import addresses, mail
from bot.crm.consent import set_consent
from bot.crm.models import ConsentPurpose, utcnow
from bot.crm.queries import InvalidSenderId, find_customer, log_interaction, record_audit

log = logging.getLogger(__name__)

EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}$")
PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]{7,24}$")


def parse_contact(text: str) -> tuple[str, str] | None:
    """("email" | "phone", normalised value) for a valid email or phone number, else None."""
    candidate = (text or "").strip().strip(".,;")
    found = re.search(r"[^\s<>\"']+@[^\s<>\"']+", candidate)
    if found and EMAIL.match(found.group(0).strip(".,;")):
        return "email", found.group(0).strip(".,;").lower()
    phone = re.search(r"\+?[\d][\d\s().\-/]{5,22}\d", candidate)
    if phone and PHONE_CHARS.match(phone.group(0)):
        digits = re.sub(r"\D", "", phone.group(0))
        if 7 <= len(digits) <= 15:
            return "phone", ("+" if phone.group(0).startswith("+") else "") + digits
    return None


GAVE_UP = "-"  # contact_value when the form ends without a value (two misses, or nothing it can change)
MISSED = frozenset(
    {"invalid", *(p.value for p in addresses.AddressProblem), *(p.value for p in addresses.NameProblem)}
)
# What the message that opened the form is about. "house number" is an address, not a phone number.
OTHER_WORDS = re.compile(r"\b(birthday|birth ?date|date of birth|dob|born)\b", re.IGNORECASE)
NAME_WORDS = re.compile(
    r"\b(name|surname|(mis)?spelt|(mis)?spelled|spelling|married|maiden|divorced|deed poll|title)\b",
    re.IGNORECASE,
)
# Cues that make it the name even when an email is mentioned ("my surname is misspelt in every email").
NAME_FIRST = re.compile(r"\b(surname|last name|first name|maiden name)\b", re.IGNORECASE)
ADDRESS_WORDS = re.compile(
    r"\b(add?ress?e?s?|addr|adres|moved?|moving|relocat\w*|post ?code|postal|zip|street|house|flat|"
    r"deliver\w*|ship\w*|live|parcels?|courier|billing)\b",
    re.IGNORECASE,
)
CONTACT_WORDS = re.compile(r"\b(e-?mail|mail|phone|number|mobile|cell|landline|contact)\b", re.IGNORECASE)


def topic_of(text: str, has_contact_entity: bool) -> str:
    """contact, address, name or other (a detail the chat cannot change, such as a birthday)."""
    if has_contact_entity:
        return "contact"
    text = re.sub(r"\b(house|flat|door|street) (number|no)\b", "street", text, flags=re.IGNORECASE)
    if NAME_FIRST.search(text):
        return "name"
    asks_contact = CONTACT_WORDS.search(text) is not None
    if ADDRESS_WORDS.search(text) and not asks_contact:
        return "address"
    if NAME_WORDS.search(text) and not asks_contact:
        return "name"
    if OTHER_WORDS.search(text) and not asks_contact:
        return "other"
    return "contact"


def is_guest(sender_id: str) -> bool:
    """Whether the chat is no shop account (asked before a guest types a whole address; the action
    checks again). A CRM that cannot be reached lets the form go on: the action then says so."""
    try:
        with crm_session() as session:
            customer = find_customer(session=session, sender_id=sender_id)
            return customer is None or not addresses.is_shop_customer(session=session, customer=customer)
    except (SQLAlchemyError, InvalidSenderId):
        log.warning("validate_contact_form: CRM unavailable for sender %s", sender_id)
        return False


def missed(tracker: Tracker, problem: str) -> dict[str, Any]:
    """Ask again saying what was missing; a second miss in a row ends the form."""
    if tracker.get_slot("contact_hint") in MISSED:
        return {"contact_value": GAVE_UP, "contact_hint": "gave_up"}
    return {"contact_value": None, "contact_hint": problem}


class ValidateContactForm(FormValidationAction):
    """Take what the opening message asked to change (contact_topic), then an answer that fits it:
    an email address or phone number (or a whole postal address given instead), a postal address,
    or a first and last name. A miss is asked again once, saying what was missing; a second miss,
    or a detail the chat cannot change, ends the form (no customer may be held in a question)."""

    def name(self) -> str:
        return "validate_contact_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        if tracker.get_slot("requested_slot") is not None:
            return events
        opening = self.opening(tracker, events)  # the form starts
        topic = next(e["value"] for e in opening if e.get("name") == "contact_topic")
        if topic in ("address", "name") and await asyncio.to_thread(is_guest, tracker.sender_id):
            return [
                *events,
                *opening[:1],
                SlotSet("contact_value", GAVE_UP),
                SlotSet("contact_hint", "guest"),
            ]
        return [*events, *opening]

    def opening(self, tracker: Tracker, events: list[EventType]) -> list[EventType]:
        """What the opening message is about, and an address it already holds."""
        given = any(e.get("name") == "contact_value" and e.get("value") for e in events)
        entities = {e.get("entity") for e in tracker.latest_message.get("entities") or []}
        text = latest_text(tracker)
        topic = "contact" if given else topic_of(text, bool(entities & {"email", "phone"}))
        opening: list[EventType] = [SlotSet("contact_topic", topic)]
        if topic == "other":
            return [*opening, SlotSet("contact_value", GAVE_UP), SlotSet("contact_hint", "gave_up")]
        if topic != "address" or not text:
            return opening
        try:
            addresses.parse_address(text)
        except addresses.AddressRefused as refused:
            if refused.problem in OPENING_HINTS:  # an address was given, but lacks a part: say which
                return [*opening, SlotSet("contact_hint", refused.problem.value)]
            return opening
        return [*opening, SlotSet("contact_value", text), SlotSet("contact_hint", None)]

    def validate_contact_value(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, topic = str(value or ""), tracker.get_slot("contact_topic") or "contact"
        if topic == "address":
            return self.address_answer(text, tracker)
        if topic == "name":
            try:
                addresses.parse_name(text)
            except addresses.NameRefused as refused:
                return missed(tracker, refused.problem.value)
            return {"contact_value": text, "contact_hint": None}
        parsed = parse_contact(text)
        if parsed is not None:
            return {"contact_value": parsed[1], "contact_hint": None}
        try:  # a whole postal address given for "your new details" is taken as one
            addresses.parse_address(text)
        except addresses.AddressRefused:
            return missed(tracker, "invalid")
        return {"contact_value": text, "contact_hint": None, "contact_topic": "address"}

    def address_answer(self, text: str, tracker: Tracker) -> dict[str, Any]:
        try:
            addresses.parse_address(text)
        except addresses.AddressRefused as refused:
            return missed(tracker, refused.problem.value)
        return {"contact_value": text, "contact_hint": None}


OPENING_HINTS = frozenset(
    {
        addresses.AddressProblem.NO_COUNTRY,
        addresses.AddressProblem.BAD_POSTCODE,
        addresses.AddressProblem.NO_CITY,
    }
)


def order_list(numbers: list[str]) -> str | None:
    """`order CL-1`, `orders CL-1 and CL-2`, `orders CL-1, CL-2 and CL-3`; None for none."""
    if not numbers:
        return None
    if len(numbers) == 1:
        return f"order {numbers[0]}"
    return f"orders {', '.join(numbers[:-1])} and {numbers[-1]}"


def address_outcome(change: addresses.AddressChange) -> str:
    """The `address_orders` slot: whether the shop was told, and which orders the change touches."""
    orders = {
        (False, False): "none",
        (True, False): "pending",
        (False, True): "shipped",
        (True, True): "both",
    }
    return f"{'told' if change.told else 'noted'}_{orders[bool(change.pending), bool(change.shipped)]}"


class ActionUpdateContactDetails(CRMAction):
    """A new phone number, delivery address or name is stored at once and what changed is told
    (an address also with what becomes of the orders on their way); a new email address is only
    asked to be confirmed: it replaces the old one when the customer opens the link. Only the
    customer behind this chat is changed, and only a shop account's address or name: a guest's
    chat names no account."""

    def name(self) -> str:
        return "action_update_contact_details"

    def act(self, turn: Turn) -> list[EventType]:
        hint, topic = turn.tracker.get_slot("contact_hint"), turn.tracker.get_slot("contact_topic")
        if hint in ("gave_up", "guest"):  # nothing to change: say so
            return [SlotSet("contact_topic", topic or "contact"), *NOTHING_CHANGED]
        if topic in ("address", "name"):
            if not addresses.is_shop_customer(session=turn.session, customer=turn.customer):
                return [SlotSet("contact_hint", "guest"), *NOTHING_CHANGED]
            return self.change_address(turn) if topic == "address" else self.change_name(turn)
        return self.change_contact(turn)

    def change_address(self, turn: Turn) -> list[EventType]:
        try:
            address = addresses.parse_address(turn.tracker.get_slot("contact_value") or "")
        except addresses.AddressRefused as refused:  # the form validated it; this guards a hand-set slot
            return [SlotSet("contact_value", None), SlotSet("contact_hint", refused.problem.value)]
        now = utcnow()
        change = addresses.change_address(
            session=turn.session, customer=turn.customer, address=address, source=source_of(turn), now=now
        )
        mail.queue_delivery_address_changed(
            session=turn.session, customer=turn.customer, address=address.one_line(), now=now
        )
        self.log_change(turn, "address")
        return [
            SlotSet("contact_kind", "address"),
            SlotSet("contact_old", change.old.one_line() if change.old else "not set"),
            SlotSet("contact_new", address.one_line()),
            SlotSet("orders_pending", order_list(change.pending)),
            SlotSet("orders_shipped", order_list(change.shipped)),
            SlotSet("address_orders", address_outcome(change)),
            SlotSet("contact_value", None),
            SlotSet("contact_hint", None),
        ]

    def change_name(self, turn: Turn) -> list[EventType]:
        try:
            first, last = addresses.parse_name(turn.tracker.get_slot("contact_value") or "")
        except addresses.NameRefused as refused:  # the form validated it; this guards a hand-set slot
            return [SlotSet("contact_value", None), SlotSet("contact_hint", refused.problem.value)]
        old, _ = addresses.change_name(
            session=turn.session,
            customer=turn.customer,
            first_name=first,
            last_name=last,
            source=source_of(turn),
            now=utcnow(),
        )
        self.log_change(turn, "name")
        return [
            SlotSet("contact_kind", "name"),
            SlotSet("contact_old", old),
            SlotSet("contact_new", f"{first} {last}"),
            SlotSet("contact_value", None),
            SlotSet("contact_hint", None),
        ]

    def change_contact(self, turn: Turn) -> list[EventType]:
        parsed = parse_contact(turn.tracker.get_slot("contact_value") or "")
        if parsed is None:  # the form validated it; this only guards a hand-set slot
            return [SlotSet("contact_value", None), SlotSet("contact_hint", "invalid")]
        kind, value = parsed
        customer, now = turn.customer, utcnow()
        old = customer.email if kind == "email" else customer.phone
        if kind == "email":
            asked = mail.start_verification(
                session=turn.session,
                customer=customer,
                address=value,
                secret_key=current_settings().secret_key,
                now=now,
            )
            state = mail.MailState.UNVERIFIED if asked is not None else mail.MailState.NONE
        else:
            customer.phone = value
            state = mail.queue_phone_changed(session=turn.session, customer=customer, now=now)
        record_audit(
            session=turn.session,
            actor="customer",
            action="email_change_requested" if kind == "email" else "phone_changed",
            entity="customer",
            entity_id=customer.id,
            details={"source": source_of(turn)},
        )
        self.log_change(turn, kind)
        return [
            SlotSet("contact_kind", kind),
            SlotSet("contact_old", old or "not set"),
            SlotSet("contact_new", value),
            SlotSet("contact_value", None),
            SlotSet("contact_hint", None),
            SlotSet("email_state", state.value),
        ]

    def log_change(self, turn: Turn, field: str) -> None:
        log_interaction(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            kind="contact_updated",
            data={"field": field},
        )


NOTHING_CHANGED = (SlotSet("contact_value", None), SlotSet("contact_kind", None))


def source_of(turn: Turn) -> str:
    """The channel the change came from, as the audit log names it."""
    return turn.conversation.sender_id.split(":")[0]


class ActionSetMarketingConsent(CRMAction):
    """opt_out / opt_in for marketing, effective immediately; service messages are unaffected."""

    def name(self) -> str:
        return "action_set_marketing_consent"

    def act(self, turn: Turn) -> list[EventType]:
        intent, _ = latest_intent(turn.tracker)
        granted = intent == "opt_in"
        changed = set_consent(
            session=turn.session,
            customer=turn.customer,
            purpose=ConsentPurpose.MARKETING,
            granted=granted,
            source=f"{turn.conversation.channel.value}:chat",
            conversation=turn.conversation,
        )
        if granted:
            return [SlotSet("consent_result", "opted_in" if changed else "already_in")]
        return [SlotSet("consent_result", "opted_out" if changed else "already_out")]
