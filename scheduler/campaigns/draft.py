"""A campaign as a marketer entered it, checked before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.gateway.limits import reads_as_intent
from scheduler.audience import Audience, InvalidAudience, check_message
from scheduler.campaigns.schedule import Schedule, check_not_past

MAX_BUTTONS = 2
# The first and last places on Earth where a local date and time happens.


@dataclass(frozen=True)
class Draft:
    """A campaign as a marketer entered it, validated, not stored."""

    name: str
    message: str
    audience: Audience
    schedule: Schedule
    buttons: tuple[str, ...]


def check_campaign(
    *,
    name: str,
    message: str,
    audience: dict[str, Any],
    schedule: dict[str, Any],
    buttons: list[str] | None = None,
    now: datetime | None = None,
) -> Draft:
    """Validate what a marketer entered; InvalidAudience says what to fix.

    With `now`, a first send that has passed everywhere is refused.
    """
    if not name.strip() or len(name.strip()) > 120:
        raise InvalidAudience("the name must be 1-120 characters")
    check_message(message)
    parsed = Audience.parse(audience)
    when = Schedule.parse(schedule)
    if now is not None:
        check_not_past(when, now)
    labels = tuple(b.strip() for b in (buttons or []) if b.strip())
    if len(labels) > MAX_BUTTONS:
        raise InvalidAudience(f"at most {MAX_BUTTONS} buttons")
    if any(len(label) > 40 for label in labels):
        raise InvalidAudience("a button label may have at most 40 characters")
    if any(reads_as_intent(label) for label in labels):  # a label is also the button's payload
        raise InvalidAudience(
            "a button label may not begin with a slash (/): the chat would read it as a command, "
            "not as the customer's answer. Write the answer in words, e.g. Tell me more"
        )
    return Draft(name.strip(), message, parsed, when, labels)
