"""What erasing a customer does to each column of each CRM table, declared once, field by field.

Erasure used to blank columns by type (Text and JSON), and a refund's reason — a String column
holding the customer's message — kept their name, phone and email. So every column of every table
now has a rule here, and `problems` refuses a schema with a column nobody decided about (a test
runs it, and so does every erasure).

What is kept, and why it is not personal data once the customer row is anonymous:
- ids and foreign keys: numbers that only point at other rows of the same anonymous customer;
- amounts, prices, quantities, scores, counts, probabilities: figures of the books and reports
  (revenue, refunds, CSAT, churn) that say nothing about who the person was;
- timestamps and booleans: when things happened and whether (contact times, SLA, consent given),
  which the reports count by period;
- enums: categories from a closed list (segment, complaint category, leave reason, status), the
  dimensions reports group by; the database refuses any other value.

Text columns that only our code writes (a handoff's reason, an event's kind, an idempotency key)
are `Code`: kept when they look like what the code writes, replaced otherwise — so a customer's
words that reach one of them by mistake, as they reached the refund's reason, still go. JSON is
`Scrub`bed to its numeric skeleton when reports read it (an event's survey id, temperament cue
counts), emptied otherwise. Everything a person wrote or that reaches them (names, contact data,
messages, comments, notes, channel ids, tracking codes, error texts) is emptied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Enum, MetaData, String

ERASED = "[erased]"
WORD = r"[a-z][a-z0-9_]*"  # kinds, reasons, teams, modes, skip reasons: constants of our code
# Scheduler keys such as `campaign:3:2026-06-15T10:00:00+00:00:customer:42`: words, ids and dates;
# no run of 11 digits, which would be a phone number, not an id.
IDEMPOTENCY_KEY = r"(?!.*\d{11})[a-z_]+(:([a-z_]+|\d[0-9T.+\-]*))*"
INTENT = r"(EXTERNAL_)?[a-z][a-z0-9_]*(/[a-z0-9_]+)?"
ACTOR = r"[a-z]+(:\d{1,10})?"  # "bot", "cli", "agent:3"
CONSENT_SOURCE = r"[a-z]+(:[a-z_]+|:\d{1,10})*"  # "web:first_contact", "console:agent:3"
LANGUAGE = r"[a-z]{2,3}(-[A-Z]{2})?"
ORDER_NUMBER = r"[A-Z]{1,4}-\d{1,12}"  # what the shop prints on the invoice: CL-104233


class Rule:
    """What erasure does to one column of the customer's rows."""


class PerRow(Rule):
    """A rule that reads each row's value to decide the new one."""

    def erase(self, value: Any, row_id: int) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Keep(Rule):
    """Keep the value: only for ids, amounts, counts, times, flags and enums (the module says why)."""


@dataclass(frozen=True)
class Link(Rule):
    """Keep the value: it names the table a row is about, which is how erasure finds the row."""


@dataclass(frozen=True)
class Set(Rule):
    """Replace the value with a fixed one (None: SQL NULL)."""

    value: Any = None


@dataclass(frozen=True)
class Stamp(Rule):
    """Set the time of the erasure."""


@dataclass(frozen=True)
class Rename(PerRow):
    """Replace a unique value with one made from the row's id, e.g. `erased:{id}`."""

    template: str

    def erase(self, value: Any, row_id: int) -> Any:
        return self.template.format(id=row_id)


@dataclass(frozen=True)
class Code(PerRow):
    """Keep a value that matches what our code writes; replace anything else."""

    pattern: str
    otherwise: Set | Rename = Set(ERASED)

    def erase(self, value: Any, row_id: int) -> Any:
        if value is None or re.fullmatch(self.pattern, value):
            return value
        return (
            self.otherwise.value if isinstance(self.otherwise, Set) else self.otherwise.erase(value, row_id)
        )


@dataclass(frozen=True)
class Scrub(PerRow):
    """Keep a JSON value's numbers, flags and nulls under identifier keys; drop every string."""

    def erase(self, value: Any, row_id: int) -> Any:
        return _skeleton(value)


NULL, ERASE, KEEP = Set(None), Set(ERASED), Keep()


@dataclass(frozen=True)
class Rows:
    """A table with customers' rows: one rule per column.

    Rows are the customer's when a foreign key leads to one of their rows; with `about` (the
    columns naming a table and a row id, as the audit log has) when they name one of their rows.
    """

    columns: Mapping[str, Rule]
    about: tuple[str, str] | None = None


@dataclass(frozen=True)
class Delete:
    """A table whose customer rows are deleted whole."""

    why: str


@dataclass(frozen=True)
class NoCustomerRows:
    """A table none of whose rows is about one customer (staff, catalogue, campaigns)."""

    why: str


Declaration = Rows | Delete | NoCustomerRows

ERASURE: dict[str, Declaration] = {
    "customer": Rows(
        {
            "id": KEEP,
            "first_name": NULL,
            "last_name": NULL,
            "email": NULL,
            "email_verified_at": NULL,
            "phone": NULL,
            "birthday": NULL,
            "address_line1": NULL,
            "address_line2": NULL,
            "postal_code": NULL,
            "city": NULL,
            "country": NULL,  # with the city gone still where they live, roughly
            "address_updated_at": KEEP,
            "timezone": Set("UTC"),  # where they live, roughly; only quiet hours read it
            "language": Code(LANGUAGE, Set("en")),
            "segment": KEEP,
            "temperament": KEEP,
            "churn_risk": KEEP,
            "churn_reasons": Scrub(),  # the weights stay for the figures; the texts go
            "churn_scored_at": KEEP,
            "tags": Set([]),  # marketers' free labels ("vip-event", "knows-the-ceo")
            "reachable": Set(False),
            "erased_at": Stamp(),
            "last_contact_at": KEEP,
            "segment_updated_at": KEEP,
            "created_at": KEEP,
            "external_id": NULL,  # the shop's handle on the person: a resend makes a new customer
            "external_updated_at": KEEP,
        }
    ),
    "channel_identity": Delete("a Telegram chat id or web visitor id reaches the person itself"),
    "outbound_mail": Delete("a mail's address and text reach and describe the person"),
    "email_verification": Delete("an address the customer gave, waiting for their confirmation"),
    "consent": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "purpose": KEEP,
            "granted": KEEP,
            "source": Code(CONSENT_SOURCE),
            "changed_at": KEEP,
        }
    ),
    "conversation": Rows(
        {
            "id": KEEP,
            "sender_id": Rename("erased:{id}"),  # `<channel>:<chat id>`; a new chat starts afresh
            "customer_id": KEEP,
            "channel": KEEP,
            "status": KEEP,
            "started_at": KEEP,
            "last_message_at": KEEP,
        }
    ),
    "message": Rows(
        {
            "id": KEEP,
            "conversation_id": KEEP,
            "direction": KEEP,
            "author": KEEP,
            "agent_id": KEEP,
            "text": NULL,
            "payload": NULL,  # buttons' titles, the customer's typed payloads, attachments
            "external_id": NULL,  # the channel's message id, a handle on the chat
            "delivery_status": Code(WORD),  # a state of our code (InboundStatus or OutboundStatus)
            "error": NULL,  # a channel's error can quote the address or the text
            "attempts": KEEP,
            "created_at": KEEP,
            "sent_at": KEEP,
        }
    ),
    "interaction_event": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "conversation_id": KEEP,
            "kind": Code(WORD),
            "intent": Code(INTENT, NULL),
            "confidence": KEEP,
            "data": Scrub(),  # reports read survey ids and temperament cue counts from it
            "created_at": KEEP,
        }
    ),
    "order": Rows(
        {
            "id": KEEP,
            "number": Code(ORDER_NUMBER, Rename("erased:{id}")),  # the books' key to the invoice
            "customer_id": KEEP,
            "status": KEEP,
            "total": KEEP,
            "carrier": NULL,
            "tracking_code": NULL,  # finds the parcel, and with it the delivery address
            "placed_at": KEEP,
            "shipped_at": KEEP,
            "delivered_at": KEEP,
            "expected_at": KEEP,
            "paid_at": KEEP,
            "external_id": NULL,  # the shop's handles lead back to the person in the shop's records
            "external_updated_at": KEEP,
        }
    ),
    "order_line": Rows(
        {"id": KEEP, "order_id": KEEP, "product_id": KEEP, "quantity": KEEP, "unit_price": KEEP}
    ),
    "subscription": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "product_id": KEEP,
            "status": KEEP,
            "monthly_price": KEEP,
            "started_at": KEEP,
            "cancel_requested_at": KEEP,
            "cancelled_at": KEEP,
            "renewed_at": KEEP,
            "paused_at": KEEP,
            "external_id": NULL,
            "external_updated_at": KEEP,
        }
    ),
    "refund": Rows(
        {
            "id": KEEP,
            "order_id": KEEP,
            "customer_id": KEEP,
            "amount": KEEP,
            "reason": NULL,  # the customer's own message
            "status": KEEP,
            "requested_at": KEEP,
            "decided_at": KEEP,
            "external_id": NULL,
            "external_updated_at": KEEP,
        }
    ),
    "complaint": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "conversation_id": KEEP,
            "order_id": KEEP,
            "category": KEEP,
            "severity": KEEP,
            "team": Code(WORD),
            "description": NULL,
            "status": KEEP,
            "sla_due_at": KEEP,
            "sla_started_at": KEEP,
            "resolution": NULL,  # an agent's words about the case, often quoting the customer
            "customer_told": KEEP,
            "created_at": KEEP,
            "resolved_at": KEEP,
            "followup_due_at": KEEP,
            "followup_done_at": KEEP,
            "owner_id": KEEP,
            "priority": KEEP,
            "first_response_at": KEEP,
            "remedy": KEEP,
            "refund_id": KEEP,
            "credit_amount": KEEP,
            "version": KEEP,
        }
    ),
    "case_event": Rows(
        {
            "id": KEEP,
            "complaint_id": KEEP,
            "kind": KEEP,
            "agent_id": KEEP,
            "actor": Code(ACTOR),
            "from_value": Code(r"[a-z0-9_]+", NULL),  # a state, a team or an agent's id
            "to_value": Code(r"[a-z0-9_]+", NULL),
            "text": NULL,  # the customer's words, a question to them, their answer, a note, a resolution
            "created_at": KEEP,
        }
    ),
    "case_alert": Rows(
        {
            "id": KEEP,
            "key": Code(IDEMPOTENCY_KEY),
            "complaint_id": KEEP,
            "round": KEEP,
            "state": Code(WORD),
            "created_at": KEEP,
        }
    ),
    "notice": Delete("a console user's to-do about the customer's case, moot once it is anonymous"),
    "retention_attempt": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "conversation_id": KEEP,
            "subscription_id": KEEP,
            "reason": KEEP,
            "offer_id": KEEP,
            "attempt_no": KEEP,
            "outcome": KEEP,
            "exit_answer": NULL,
            "created_at": KEEP,
            "decided_at": KEEP,
        }
    ),
    "handoff": Rows(
        {
            "id": KEEP,
            "conversation_id": KEEP,
            "customer_id": KEEP,
            "reason": Code(WORD),
            "priority": KEEP,
            "status": KEEP,
            "agent_id": KEEP,
            "resolution": NULL,
            "mode": Code(WORD),
            "callback_by": KEEP,
            "requested_at": KEEP,
            "claimed_at": KEEP,
            "closed_at": KEEP,
        }
    ),
    "survey": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "conversation_id": KEEP,
            "complaint_id": KEEP,
            "handoff_id": KEEP,
            "score": KEEP,
            "comment": NULL,
            "created_at": KEEP,
        }
    ),
    "feedback_item": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "conversation_id": KEEP,
            "survey_id": KEEP,
            "retention_attempt_id": KEEP,
            "source": KEEP,
            "text": ERASE,  # the customer's words
            "score": KEEP,
            "theme": KEEP,
            "product": NULL,  # read from their words
            "competitor": NULL,
            "state": KEEP,
            "owner_id": KEEP,
            "customer_told_at": KEEP,
            "customer_told_by": KEEP,
            "created_at": KEEP,
            "version": KEEP,
        }
    ),
    "feedback_event": Rows(
        {
            "id": KEEP,
            "item_id": KEEP,
            "kind": KEEP,
            "agent_id": KEEP,
            "from_value": Code(r"[a-z0-9_]+", NULL),  # a state, a source or an agent's id
            "to_value": Code(r"[a-z0-9_]+", NULL),
            "text": NULL,  # what we told the customer
            "created_at": KEEP,
        }
    ),
    "delivery": Rows(
        {
            "id": KEEP,
            "idempotency_key": Code(IDEMPOTENCY_KEY, Rename("erased:{id}")),  # campaign figures read it
            "kind": KEEP,
            "customer_id": KEEP,
            "campaign_id": KEEP,
            "complaint_id": KEEP,
            "status": KEEP,
            "payload": Set({}),  # entities for the message, e.g. the order number or a name
            "attempts": KEEP,
            "skip_reason": Code(WORD, NULL),
            "error": NULL,
            "scheduled_for": KEEP,
            "created_at": KEEP,
            "sent_at": KEEP,
            "replied_at": KEEP,
        }
    ),
    "agent_note": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "handoff_id": KEEP,
            "agent_id": KEEP,
            "text": ERASE,
            "created_at": KEEP,
        }
    ),
    "audit_log": Rows(
        {
            "id": KEEP,
            "actor": Code(ACTOR),
            "action": Code(WORD),
            "entity": Link(),
            "entity_id": KEEP,
            "details": Scrub(),  # what stays says that something happened, by ids and counts
            "created_at": KEEP,
        },
        about=("entity", "entity_id"),
    ),
    "nlu_review": Rows(
        {
            "id": KEEP,
            "message_id": KEEP,
            "reasons": Code(r"[a-z_]+(,[a-z_]+)*"),
            "intent": Code(INTENT, NULL),
            "confidence": KEEP,
            "ranking": Scrub(),  # intent names go, confidences stay
            "votes": Scrub(),
            "read_at": KEEP,
            "decision": KEEP,
            "chosen_intent": Code(INTENT, NULL),
            "reviewed_by": KEEP,
            "reviewed_at": KEEP,
            "exported_at": KEEP,
            # the words stay in message.text (emptied above); an export file holds them masked
            "export_file": Code(r"review-\d{4}-\d{2}-\d{2}-\d+\.yml", NULL),
        }
    ),
    "nlu_review_state": NoCustomerRows("how far the review has read Rasa's tracker store"),
    "agent": NoCustomerRows("console users: staff"),
    "agent_team": NoCustomerRows("which teams a console user works in: staff"),
    "console_session": NoCustomerRows("agents' console logins: staff"),
    "canned_reply": NoCustomerRows("prepared answers agents share"),
    "campaign": NoCustomerRows("a marketer's message and audience filter, for many customers"),
    "offer": NoCustomerRows("the retention offer catalogue"),
    "product": NoCustomerRows("the product catalogue"),
    "api_key": NoCustomerRows("keys an admin made for the shop's systems"),
    "webhook_subscription": NoCustomerRows("URLs an admin subscribed for the shop's systems"),
    "webhook_delivery": Delete("events about the customer for the shop's systems, which keep their own copy"),
    "segment_change": Rows(
        {
            "id": KEEP,
            "customer_id": KEEP,
            "from_segment": KEEP,
            "to_segment": KEEP,
            "rule": Code(WORD),  # codes of bot.crm.segments.RULE_WORDS
            "trigger": Code(WORD),
            "changed_at": KEEP,
        }
    ),
    "drift_episode": Rows(
        {
            "id": KEEP,
            "key": Code(r"drift:customer:\d+:since:\d{4}-\d{2}-\d{2}"),  # an id and a day
            "customer_id": KEEP,
            "segment": KEEP,
            "reason": Code(WORD),  # codes of bot.crm.drift.REASON_WORDS
            "reasons": Scrub(),  # the factors' texts ("no order for 65 days") go
            "last_active_at": KEEP,
            "started_at": KEEP,
            "action": Code(WORD),
            "delivery_id": KEEP,
            "task_done_at": KEEP,
            "task_agent_id": KEEP,
            "task_note": NULL,  # an agent's words about the call, often quoting the customer
            "ended_at": KEEP,
            "outcome": Code(WORD, NULL),
            "came_back_by": Code(WORD, NULL),
        }
    ),
    "segment_run": NoCustomerRows("one nightly refresh of every customer's segment: counts and a threshold"),
}


@dataclass
class _Check:
    metadata: MetaData
    declarations: Mapping[str, Declaration]
    found: list[str] = field(default_factory=list)

    def run(self) -> list[str]:
        tables = self.metadata.tables
        for name in sorted(set(tables) - set(self.declarations)):
            self.found.append(f"{name}: no erasure decision for this table")
        for name in sorted(set(self.declarations) - set(tables)):
            self.found.append(f"{name}: declared but no such table")
        for name, table in sorted(tables.items()):
            declaration = self.declarations.get(name)
            if isinstance(declaration, Rows):
                self.columns(name, table.columns, declaration)
            elif isinstance(declaration, NoCustomerRows):
                self.unrelated(name, table.foreign_keys)
        return self.found

    def columns(self, name: str, columns: Any, declaration: Rows) -> None:
        for column in columns:
            rule = declaration.columns.get(column.name)
            if rule is None:
                self.found.append(f"{name}.{column.name}: no erasure decision for this column")
            elif problem := _misfit(column, rule):
                self.found.append(f"{name}.{column.name}: {problem}")
        for extra in sorted(set(declaration.columns) - {c.name for c in columns}):
            self.found.append(f"{name}.{extra}: declared but no such column")
        links = sorted(c for c, r in declaration.columns.items() if isinstance(r, Link))
        if links != sorted(declaration.about[:1] if declaration.about else []):
            self.found.append(f"{name}: a Link column must be the table named in `about`, and only it")

    def unrelated(self, name: str, foreign_keys: Any) -> None:
        for key in foreign_keys:
            target = self.declarations.get(key.column.table.name)
            if not isinstance(target, NoCustomerRows):
                self.found.append(
                    f"{name}.{key.parent.name}: leads to customers' rows, so the table has some"
                )


def _misfit(column: Column[Any], rule: Rule) -> str | None:
    """Why a rule cannot apply to a column, if it cannot."""
    free_text = isinstance(column.type, (String, JSON)) and not isinstance(column.type, Enum)
    if isinstance(rule, Keep) and free_text:
        return "free text or JSON cannot be kept as it is: use Code, Scrub, Set or Rename"
    if isinstance(rule, (Code, Rename, Link)) and not (isinstance(column.type, String) and free_text):
        return f"{type(rule).__name__} is for text columns"
    if isinstance(rule, Scrub) and not isinstance(column.type, JSON):
        return "Scrub is for JSON columns"
    if isinstance(rule, Set) and rule.value is None and not column.nullable:
        return "the column is NOT NULL: Set a value instead"
    if isinstance(rule, Code) and isinstance(rule.otherwise, Set) and rule.otherwise.value is None:
        if not column.nullable:
            return "the column is NOT NULL: replace with a value instead"
    return None


def problems(metadata: MetaData, declarations: Mapping[str, Declaration] = ERASURE) -> list[str]:
    """Every table or column without a fitting erasure decision (empty when all are declared)."""
    return _Check(metadata, declarations).run()


def _skeleton(value: Any) -> Any:
    """A JSON value's numbers, flags and nulls under identifier keys; strings and the rest dropped."""
    if isinstance(value, dict):
        kept = {k: _skeleton(v) for k, v in value.items() if isinstance(k, str) and re.fullmatch(WORD, k)}
        return {k: v for k, v in kept.items() if v is not _DROP}
    if isinstance(value, list):
        return [v for v in (_skeleton(item) for item in value) if v is not _DROP]
    if value is None or isinstance(value, bool):
        return value
    # A number as long as a phone number or a Telegram chat id is not a count or one of our ids.
    if isinstance(value, (int, float)) and abs(value) < 10**10:
        return value
    return _DROP


_DROP = object()
