"""The closed vocabularies of the CRM, stored as their string values."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class Labelled(str, enum.Enum):
    """A state whose value is stored and whose label is shown; declared as `NAME = value, label`.

    A state cannot be added without its label: the label is part of its declaration."""

    label: str

    if TYPE_CHECKING:  # a stored value reads back as its state: `DeliveryStatus("sent")`

        def __new__(cls, value: str, label: str = ...) -> Self: ...

    else:

        def __new__(cls, value: str, label: str) -> Labelled:
            member = str.__new__(cls, value)
            member._value_ = value
            member.label = label
            return member

    def __str__(self) -> str:
        return str(self.value)  # logs and f-strings show the stored value, not Class.NAME


class Segment(str, enum.Enum):
    MVC = "MVC"  # most valuable: top ~20% by trailing-12-month value
    MCC = "MCC"  # most growable: rising spend, or young and frequent
    BZ = "BZ"  # below zero: costs more to serve than it brings
    STANDARD = "standard"


class Temperament(str, enum.Enum):
    IRRITABLE = "irritable"
    DEPENDENT = "dependent"
    PICKY = "picky"
    TRIAL_SEEKING = "trial_seeking"
    RATIONAL = "rational"
    UNKNOWN = "unknown"


class Channel(str, enum.Enum):
    TELEGRAM = "telegram"
    WEB = "web"


class ConsentPurpose(str, enum.Enum):
    SERVICE = "service"
    MARKETING = "marketing"


class OrderStatus(str, enum.Enum):
    PLACED = "placed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURNED = "returned"


class SubscriptionStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"


class RefundStatus(str, enum.Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


class ConversationStatus(str, enum.Enum):
    BOT = "bot"
    HANDED_OFF = "handed_off"
    CLOSED = "closed"


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(str, enum.Enum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class InboundStatus(Labelled):
    """A customer's message on its way through the bot (the gateway's inbox)."""

    RECEIVED = "received", "received"  # stored before anything else happens
    PROCESSED = "processed", "answered"  # answered by the bot or routed to a person
    FAILED = "failed", "failed"  # given up after its tries


class OutboundStatus(Labelled):
    """A message to the customer on its way out through its channel."""

    QUEUED = "queued", "waiting"
    SENT = "sent", "sent"
    DELIVERED = "delivered", "delivered"  # the channel (or the web page) confirmed it
    FAILED = "failed", "failed"
    SKIPPED = "skipped", "skipped"  # nothing the channel can show


class DeliveryStatus(Labelled):
    """A scheduled proactive message (campaign, check-in, greeting) from queued to sent or dropped."""

    QUEUED = "queued", "waiting"
    SENDING = "sending", "being sent"  # claimed by one scheduler process; the gateway's key covers a crash
    SENT = "sent", "sent"
    FAILED = "failed", "failed"
    SKIPPED = "skipped", "skipped"  # for good; `skip_reason` says why


class ComplaintCategory(str, enum.Enum):
    DELIVERY = "delivery"
    BILLING = "billing"
    PRODUCT_QUALITY = "product_quality"
    SERVICE = "service"
    TECHNICAL = "technical"
    OTHER = "other"


class Severity(str, enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ComplaintStatus(str, enum.Enum):
    """A complaint case's lifecycle (bot/crm/cases.py says which moves are allowed)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"  # a question went to the customer
    RESOLVED = "resolved"  # the customer was told; the revisit asks whether it held
    REOPENED = "reopened"  # the fix did not hold: back to its owner at top priority
    CLOSED = "closed"  # the customer confirmed the fix


class Team(str, enum.Enum):
    """The teams that own complaint cases, routed from the category (bot/crm/complaints.py)."""

    LOGISTICS = "logistics"
    BILLING = "billing"
    QUALITY = "quality"
    CUSTOMER_CARE = "customer_care"
    TECH = "tech"


class Remedy(str, enum.Enum):
    """What the customer got when their case was resolved."""

    REFUND = "refund"  # through the refund policy (bot/crm/refunds.py)
    REPLACEMENT = "replacement"
    CREDIT = "credit"  # store credit, an amount
    NONE = "none"


class CaseEventKind(str, enum.Enum):
    """One line of a case's history."""

    FILED = "filed"
    STATE = "state"  # from one state to another
    OWNER = "owner"  # taken, reassigned or released
    TEAM = "team"  # moved to another team
    NOTE = "note"  # internal, never sent to the customer
    QUESTION = "question"  # asked the customer through their channel
    ANSWER = "answer"  # the customer's reply to a question
    RESOLVED = "resolved"  # with the resolution text and the remedy
    REOPENED = "reopened"
    PROMISE = "promise"  # the time promised to the customer moved (from / to: Unix seconds)
    CLOCK = "clock"  # the SLA clock acted: at risk, late (honest update) or breached


class LeaveReason(str, enum.Enum):
    PRICE = "price"
    QUALITY = "quality"
    SERVICE = "service"
    COMPETITOR = "competitor"
    NO_LONGER_NEEDED = "no_longer_needed"
    MOVING = "moving"
    OTHER = "other"


class OfferKind(str, enum.Enum):
    DISCOUNT = "discount"
    CHEAPER_PLAN = "cheaper_plan"
    PAUSE = "pause"
    FIX_FIRST = "fix_first"
    PRICE_MATCH = "price_match"
    VALUE_PITCH = "value_pitch"
    PERSONAL_CALL = "personal_call"


class RetentionOutcome(str, enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class HandoffReason(Labelled):
    """Why a conversation goes to a person (stored as a string in `handoff.reason`)."""

    CUSTOMER_REQUEST = "customer_request", "the customer asked for a person"
    COMPLAINT = "complaint", "a complaint"
    RETENTION = "retention", "wants to cancel"
    LOW_CSAT = "low_csat", "an unhappy rating"
    FALLBACK = "fallback", "the bot did not understand"
    FOLLOW_UP = "follow_up", "a follow-up: the customer wrote again after a close"
    REFUND_REVIEW = "refund_review", "a refund to review"
    OTHER = "other", "another reason"


class HandoffStatus(str, enum.Enum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RETURNED = "returned"  # handed back to the bot
    CLOSED = "closed"


class Role(str, enum.Enum):
    AGENT = "agent"
    LEAD = "lead"  # an agent who leads their team(s): works every case of the team
    MARKETER = "marketer"
    ADMIN = "admin"


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class OutreachKind(str, enum.Enum):
    CAMPAIGN = "campaign"
    COMPLAINT_FOLLOWUP = "complaint_followup"
    DELIVERY_CHECK = "delivery_check"
    SILENCE = "silence"
    BIRTHDAY = "birthday"
    HOLIDAY = "holiday"
    WIN_BACK = "win_back"
    SURVEY = "survey"
    HANDBACK = "handback"  # the bot's follow-up when an agent hands a chat back (counted, not capped)
    CASE_UPDATE = "case_update"  # a team's resolution of, or question about, the customer's own case


class CountryCode(str, enum.Enum):
    """The countries a delivery address may be in (ISO 3166-1 alpha-2; bot/crm/addresses.py knows
    each one's names and postal codes)."""

    GB = "GB"
    IE = "IE"
    DE = "DE"
    AT = "AT"
    CH = "CH"
    FR = "FR"
    BE = "BE"
    NL = "NL"
    LU = "LU"
    IT = "IT"
    ES = "ES"
    PT = "PT"
    DK = "DK"
    SE = "SE"
    NO = "NO"
    FI = "FI"
    PL = "PL"
    CZ = "CZ"
    US = "US"
    CA = "CA"
    AU = "AU"
    JP = "JP"
