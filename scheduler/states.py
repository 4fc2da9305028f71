"""The outreach lifecycles' states, one enum each, every state declared with the words people read.

A state is stored and logged as its value (`skip_reason` columns hold the value, so existing rows
read the same) and shown as its label. A state cannot be added without its label: the label is
part of its declaration.
"""

from __future__ import annotations

from bot.crm.models.enums import Labelled


class SkipReason(Labelled):
    """Why a delivery (or a mail) was dropped for good."""

    NO_CONSENT = "no_consent", "no consent"
    UNREACHABLE = "unreachable", "unreachable"
    FREQUENCY_CAP = "frequency_cap", "frequency cap"
    ERASED = "erased", "customer data erased"
    NOT_NEEDED = "not_needed", "no longer needed"
    CAMPAIGN_CANCELLED = "campaign_cancelled", "campaign cancelled"
    UNVERIFIED_ADDRESS = "unverified_address", "email address not confirmed"


class DelayReason(Labelled):
    """Why a delivery (or a mail) still waits, and will be tried again."""

    QUIET_HOURS = "quiet_hours", "quiet hours"
    WITH_A_PERSON = "with_a_person", "in a chat with a person"
    CAMPAIGN_PAUSED = "campaign_paused", "campaign paused"


class SendStatus(Labelled):
    """What the gateway answered when the sender asked it to send a delivery."""

    SENT = "sent", "sent"
    UNREACHABLE = "unreachable", "the customer cannot be reached on any channel"
    CAPPED = "capped", "the weekly cap is reached"
    RETRY = "retry", "not sent this time; try again later"


class SenderOutcome(Labelled):
    """What one pass of the sender did with one due delivery."""

    SENT = "sent", "sent"
    SKIPPED = "skipped", "skipped for good"
    DELAYED = "delayed", "delayed by the policy gate"
    HELD = "held", "held: its campaign is paused"
    WAITING = "waiting", "waiting: not relevant yet"
    TAKEN = "taken", "claimed by another sender"
    RETRY = "retry", "failed for now; tried again later"
    FAILED = "failed", "failed for good"


LIFECYCLES: tuple[type[Labelled], ...] = (SkipReason, DelayReason, SendStatus, SenderOutcome)
HOLD_REASONS: dict[str, Labelled] = {r.value: r for r in (*SkipReason, *DelayReason)}


def reason_label(code: str | None) -> str | None:
    """A stored skip or delay reason in people's words (an unknown one as it was stored)."""
    if code is None:
        return None
    reason = HOLD_REASONS.get(code)
    return reason.label if reason is not None else code
