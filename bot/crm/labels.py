"""Every code the CRM stores, in the words people read: one place for labels.

The console shows these labels (the `label` Jinja filter), never the codes. Each vocabulary is an
enum with its labels beside it: in its declaration for a `Labelled` lifecycle (the message and
delivery states, bot/crm/models/enums.py; the outreach reasons, scheduler/states.py), here for the
others; tests/crm/test_labels.py fails when a state has no label.
Customer-facing words (the tier a customer hears) are kept apart from staff-facing ones: a
customer is never told they are "below zero".
"""

from __future__ import annotations

import enum

from bot.crm.addresses import BY_CODE
from bot.crm.models import HANDOFF_CALLBACK, HANDOFF_LIVE, HandoffReason, Segment
from bot.crm.models import enums as vocabularies
from bot.crm.models.enums import Labelled

UNKNOWN = "not known yet"

# By the enum's class name, so that a vocabulary's labels can be written before or with its enum.
LABELS: dict[str, dict[str, str]] = {
    "Segment": {
        "MVC": "most valuable (MVC)",
        "MCC": "most growable (MCC)",
        "BZ": "costs more than it brings (BZ)",
        "standard": "standard",
    },
    "Temperament": {
        "irritable": "irritable: short, concrete answers",
        "dependent": "dependent: guide with a recommendation",
        "picky": "picky: several options with reasons",
        "trial_seeking": "trial-seeking: likes new things",
        "rational": "rational: facts, no fluff",
        "unknown": UNKNOWN,
    },
    "Channel": {"telegram": "Telegram", "web": "the website"},
    "ConsentPurpose": {"service": "service messages", "marketing": "marketing messages"},
    "OrderStatus": {
        "placed": "placed",
        "shipped": "shipped",
        "delivered": "delivered",
        "cancelled": "cancelled",
        "returned": "returned",
    },
    "SubscriptionStatus": {
        "active": "active",
        "paused": "paused",
        "cancel_requested": "asked to cancel",
        "cancelled": "cancelled",
    },
    "RefundStatus": {"requested": "requested", "approved": "approved", "rejected": "refused", "paid": "paid"},
    "Direction": {"inbound": "from the customer", "outbound": "to the customer"},
    "ConversationStatus": {"bot": "with the bot", "handed_off": "with a person", "closed": "closed"},
    "Author": {"customer": "Customer", "bot": "Bot", "agent": "Agent", "system": "Notice"},
    "ComplaintCategory": {
        "delivery": "delivery",
        "billing": "billing",
        "product_quality": "product quality",
        "service": "service",
        "technical": "technical problem",
        "other": "other",
    },
    "Severity": {"low": "low severity", "medium": "medium severity", "high": "high severity"},
    "ComplaintStatus": {
        "open": "open",
        "in_progress": "being worked on",
        "waiting_on_customer": "waiting for the customer",
        "resolved": "resolved",
        "reopened": "reopened",
        "closed": "closed",
    },
    "LeaveReason": {
        "price": "the price",
        "quality": "quality",
        "service": "service",
        "competitor": "a competitor",
        "no_longer_needed": "no longer needed",
        "moving": "moving away",
        "other": "another reason",
    },
    "OfferKind": {
        "discount": "a discount",
        "cheaper_plan": "a cheaper plan",
        "pause": "a pause",
        "fix_first": "fix the problem first",
        "price_match": "a price match",
        "value_pitch": "what they get for the price",
        "personal_call": "a personal call",
    },
    "RetentionOutcome": {"pending": "no answer yet", "accepted": "accepted", "declined": "declined"},
    "HandoffStatus": {
        "queued": "waiting for a person",
        "claimed": "with an agent",
        "returned": "handed back to the bot",
        "closed": "closed",
    },
    "Role": {"agent": "agent", "lead": "team lead", "marketer": "marketer", "admin": "admin"},
    "Team": {
        "logistics": "logistics",
        "billing": "billing",
        "quality": "quality",
        "customer_care": "customer care",
        "tech": "tech",
    },
    "Remedy": {
        "refund": "a refund",
        "replacement": "a replacement",
        "credit": "store credit",
        "none": "nothing",
    },
    "CaseEventKind": {
        "filed": "filed",
        "state": "state changed",
        "owner": "owner changed",
        "team": "moved to another team",
        "note": "internal note",
        "question": "asked the customer",
        "answer": "the customer answered",
        "resolved": "resolved",
        "reopened": "reopened",
        "promise": "promised time moved",
        "clock": "SLA clock",
    },
    "OutreachKind": {
        "campaign": "campaign",
        "complaint_followup": "complaint follow-up",
        "delivery_check": "delivery check",
        "silence": "check-in after silence",
        "birthday": "birthday greeting",
        "holiday": "holiday greeting",
        "win_back": "win-back",
        "survey": "satisfaction survey",
        "handback": "follow-up after a person",
        "case_update": "news about their case",
    },
    "FeedbackSource": {
        "feedback": "feedback",
        "rating_comment": "comment on a rating",
        "exit_answer": "why they left",
    },
    "FeedbackState": {"new": "new", "in_progress": "in progress", "done": "done"},
    "FeedbackTheme": {
        "delivery": "delivery",
        "billing": "billing",
        "product_quality": "product quality",
        "service": "service",
        "technical": "website and app",
        "price": "price",
        "competitor": "competitors",
        "no_longer_needed": "no longer needed",
        "moving": "moving away",
        "other": "other",
    },
    "FeedbackEventKind": {
        "filed": "filed",
        "state": "state changed",
        "owner": "owner changed",
        "told": "customer told",
    },
    "CampaignStatus": {
        "draft": "draft",
        "scheduled": "scheduled",
        "sending": "sending",
        "paused": "paused",
        "cancelled": "cancelled",
        "done": "done",
    },
}

# Codes stored as plain strings: a handoff's reason (declared with its words as HandoffReason) and mode.
HANDOFF_REASONS = {reason.value: reason.label for reason in HandoffReason}
HANDOFF_MODES = {HANDOFF_LIVE: "live chat", HANDOFF_CALLBACK: "call back"}
EXTRA = {"handoff_reason": HANDOFF_REASONS, "handoff_mode": HANDOFF_MODES}
# A lifecycle declared with its labels (bot/crm/models/enums.py) is read from its declaration.
LABELS.update(
    {
        kind.__name__: {state.value: state.label for state in kind}
        for kind in vars(vocabularies).values()
        if isinstance(kind, type) and issubclass(kind, Labelled) and kind is not Labelled
    }
)
# A delivery address's country reads as its name (bot/crm/addresses.py knows each one).
LABELS["CountryCode"] = {code: country.name for code, country in BY_CODE.items()}

# What a customer may read about their own tier ({segment} in a campaign message).
CUSTOMER_TIERS = {
    Segment.MVC: "Gold",
    Segment.MCC: "Silver",
    Segment.STANDARD: "valued",
    Segment.BZ: "valued",
}


def label(code: object, kind: str | None = None) -> str:
    """The words for a code: an enum member, or a string code of `kind` ("handoff_reason", "Segment", …).

    An unknown code is shown with its underscores as spaces rather than hidden."""
    if code is None or code == "":
        return UNKNOWN
    if isinstance(code, Labelled):
        return code.label
    if isinstance(code, enum.Enum):
        return LABELS.get(type(code).__name__, {}).get(str(code.value), _plain(code.value))
    text = str(code)
    if kind is not None:
        table = EXTRA.get(kind) or LABELS.get(kind, {})
        return table.get(text, _plain(text))
    return _plain(text) if text != "unknown" else UNKNOWN


def customer_tier(segment: Segment | str) -> str:
    """The tier name a customer may read for their segment (never the internal code)."""
    return CUSTOMER_TIERS.get(Segment(segment), "valued")


def _plain(code: object) -> str:
    return str(code).replace("_", " ")
