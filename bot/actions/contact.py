"""Contact details and marketing consent: validated, immediate, confirmed, audited."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.base import CRMAction, Turn, current_settings, latest_intent
from bot.crm import mail
from bot.crm.consent import set_consent
from bot.crm.models import ConsentPurpose, utcnow
from bot.crm.queries import log_interaction, record_audit

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


GAVE_UP = "-"  # contact_value when the customer gave no email or phone twice: the form ends


class ValidateContactForm(FormValidationAction):
    """Accept an email address or a phone number; anything else is asked again once with an
    example, and a second miss ends the form (an address or a name is not something it can take,
    and no customer may be held in a question)."""

    def name(self) -> str:
        return "validate_contact_form"

    def validate_contact_value(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        parsed = parse_contact(str(value or ""))
        if parsed is not None:
            return {"contact_value": parsed[1], "contact_hint": None}
        if tracker.get_slot("contact_hint") == "invalid":
            return {"contact_value": GAVE_UP, "contact_hint": "gave_up"}
        return {"contact_value": None, "contact_hint": "invalid"}


class ActionUpdateContactDetails(CRMAction):
    """A new phone number is stored at once (and the confirmed address told); a new email address
    is only asked to be confirmed: it replaces the old one when the customer opens the link."""

    def name(self) -> str:
        return "action_update_contact_details"

    def act(self, turn: Turn) -> list[EventType]:
        if turn.tracker.get_slot("contact_hint") == "gave_up":  # nothing to change: say so
            return [SlotSet("contact_value", None), SlotSet("contact_kind", None)]
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
            details={"source": turn.conversation.sender_id.split(":")[0]},
        )
        log_interaction(
            session=turn.session,
            customer=customer,
            conversation=turn.conversation,
            kind="contact_updated",
            data={"field": kind},
        )
        return [
            SlotSet("contact_kind", kind),
            SlotSet("contact_old", old or "not set"),
            SlotSet("contact_new", value),
            SlotSet("contact_value", None),
            SlotSet("contact_hint", None),
            SlotSet("email_state", state.value),
        ]


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
