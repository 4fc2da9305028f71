"""The retention save: ask what would keep them, offer what fits, respect a final no gracefully."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn, current_settings
from bot.actions.formatting import due_phrase
from bot.crm import mail, retention
from bot.crm.handoffs import callback_promise, open_handoff
from bot.crm.models import (
    HANDOFF_CALLBACK,
    ComplaintCategory,
    LeaveReason,
    Offer,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    utcnow,
)
from bot.crm.queries import log_interaction

SAVE_WINDOW = timedelta(hours=2)
# "The quality has been awful" answers "what would keep you?" as much as any leave_reason does.
REASON_FROM_COMPLAINT = {
    ComplaintCategory.PRODUCT_QUALITY: LeaveReason.QUALITY,
    ComplaintCategory.SERVICE: LeaveReason.SERVICE,
    ComplaintCategory.DELIVERY: LeaveReason.SERVICE,
    ComplaintCategory.TECHNICAL: LeaveReason.SERVICE,
    ComplaintCategory.BILLING: LeaveReason.PRICE,
}  # attempts within this window belong to the same save conversation


def offer_slots(offer: Offer) -> list[EventType]:
    return [
        SlotSet("retention_state", "offer"),
        SlotSet("offer_title", offer.title),
        SlotSet("offer_description", offer.description),
        SlotSet("offer_kind", offer.kind.value),
    ]


def attempts_so_far(turn: Turn) -> list[RetentionAttempt]:
    """This save's attempts, oldest first: an offer taken ends a save, so only those after it count."""
    attempts = retention.attempts_in(
        session=turn.session,
        conversation_id=turn.conversation.id,
        customer_id=turn.customer.id,
        since=utcnow() - SAVE_WINDOW,
    )
    taken = [i for i, a in enumerate(attempts) if a.outcome is RetentionOutcome.ACCEPTED]
    return attempts[taken[-1] + 1 :] if taken else attempts


def reason_of(turn: Turn) -> LeaveReason:
    """The reason from the entity, else from a competitor named, else `other`."""
    value = turn.entity("leave_reason") or turn.tracker.get_slot("leave_reason")
    if value in LeaveReason._value2member_map_:
        return LeaveReason(value)
    return reason_said(turn) or LeaveReason.OTHER


def reason_said(turn: Turn) -> LeaveReason | None:
    """A reason this very message gives ("no, it's the quality"): its entity, else the text analysis."""
    value = turn.entity("leave_reason")
    if value in LeaveReason._value2member_map_:
        return LeaveReason(value)
    if turn.analysis.leave_reason:
        return LeaveReason(turn.analysis.leave_reason)
    category = turn.analysis.category
    return REASON_FROM_COMPLAINT.get(category) if category else None


def find_offer(turn: Turn, reason: LeaveReason, attempts: list[RetentionAttempt]) -> Offer | None:
    """The best offer for the reason not tried in this save, of a kind not tried either, and within
    the catalogue's limit for this customer."""
    return retention.choose_offer(
        session=turn.session,
        reason=reason,
        segment=turn.customer.segment,
        exclude={a.offer_id for a in attempts if a.offer_id is not None},
        exclude_kinds={a.offer.kind for a in attempts if a.offer is not None},
        customer_id=turn.customer.id,
        now=utcnow(),
    )


def out_of_offers(turn: Turn) -> list[EventType]:
    """No (more) offers: a most valuable customer is offered a person before the cancellation is
    recorded; anyone else's no is respected at once."""
    if turn.customer.segment is Segment.MVC:
        log_interaction(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            kind="retention_person_offered",
            data={"segment": Segment.MVC.value},
        )
        return [SlotSet("retention_state", "person")]
    return give_up(turn)


def after_a_no(turn: Turn, attempts: list[RetentionAttempt]) -> list[EventType]:
    """The customer turned the offer down: record why, if they said, then one more, different offer
    at most (for the reason they gave now, else the first reason), then the end of the offers."""
    pending = [a for a in attempts if a.outcome is RetentionOutcome.PENDING]
    because = reason_said(turn)
    if pending:
        retention.decide(
            session=turn.session,
            attempt=pending[-1],
            accepted=False,
            customer=turn.customer,
            conversation=turn.conversation,
            because=because,
        )
    first = next((a.reason for a in attempts if a.reason is not None), None)
    reasons = [r for r in dict.fromkeys((because, first)) if r is not None] or [reason_of(turn)]
    if len(attempts) < retention.MAX_ATTEMPTS:
        for reason in reasons:
            offer = find_offer(turn, reason, attempts)
            if offer is not None:
                retention.record_offer(
                    session=turn.session,
                    customer=turn.customer,
                    reason=reason,
                    offer=offer,
                    attempt_no=len(attempts) + 1,
                    conversation=turn.conversation,
                )
                return [SlotSet("leave_reason", reason.value), *offer_slots(offer)]
    return out_of_offers(turn)


def give_up(turn: Turn) -> list[EventType]:
    """No (more) offers: record the cancellation request, confirm it by mail (when the customer has
    a confirmed address) and plan the win-back check-in."""
    now = utcnow()
    subscription = retention.active_subscription(session=turn.session, customer_id=turn.customer.id)
    plan = subscription.product.name if subscription is not None else None
    ends_at = retention.billing_month_end(subscription.started_at, now) if subscription is not None else None
    retention.record_cancellation(
        session=turn.session, customer=turn.customer, conversation=turn.conversation, now=now
    )
    state = mail.queue_cancellation_confirmation(
        session=turn.session, customer=turn.customer, plan=plan, now=now, ends_at=ends_at
    )
    return [SlotSet("retention_state", "exhausted"), SlotSet("email_state", state.value)]


class ActionStartRetention(CRMAction):
    """Look at who is leaving before asking what would keep them."""

    def name(self) -> str:
        return "action_start_retention"

    def act(self, turn: Turn) -> list[EventType]:
        cases = turn.tracker.get_slot("open_case")
        situation = retention.situation(
            session=turn.session, customer=turn.customer, open_complaints=1 if cases else 0, now=utcnow()
        )
        log_interaction(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            kind="cancel_intent",
            intent="cancel_subscription",
            data={"tenure_months": situation.tenure_months, "past_saves": situation.past_saves},
        )
        if situation.subscription is None:
            return [SlotSet("subscription_state", "none")]
        valued = turn.customer.segment is Segment.MVC or situation.tenure_months >= 12
        context = "open_case" if situation.open_complaints else "valued" if valued else "plain"
        return [
            SlotSet("subscription_state", "active"),
            SlotSet("retention_context", context),
            SlotSet("tenure_months", str(situation.tenure_months)),
            SlotSet("plan_name", situation.subscription.product.name),
            SlotSet("retention_state", None),
            SlotSet("leave_reason", None),
        ]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("subscription_state", "none")]


class ActionOfferRetention(CRMAction):
    """Choose the first offer for the reason and segment, and record the attempt."""

    def name(self) -> str:
        return "action_offer_retention"

    def act(self, turn: Turn) -> list[EventType]:
        attempts = attempts_so_far(turn)
        if attempts:  # a reason given in answer to an offer ("no, it's the quality") is a no with a why
            return after_a_no(turn, attempts)
        reason = reason_of(turn)
        offer = find_offer(turn, reason, [])
        retention.record_offer(
            session=turn.session,
            customer=turn.customer,
            reason=reason,
            offer=offer,  # None: nothing fits, and the try is on record all the same
            attempt_no=1,
            conversation=turn.conversation,
        )
        if offer is None:
            return [SlotSet("leave_reason", reason.value), *out_of_offers(turn)]
        return [SlotSet("leave_reason", reason.value), *offer_slots(offer)]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("retention_state", "exhausted")]


class ActionAcceptRetention(CRMAction):
    """The customer stays: apply the offer, and bring in a person where the offer promises one."""

    def name(self) -> str:
        return "action_accept_retention"

    def act(self, turn: Turn) -> list[EventType]:
        pending = [a for a in attempts_so_far(turn) if a.outcome is RetentionOutcome.PENDING]
        if not pending or pending[-1].offer is None:
            return [SlotSet("retention_state", None)]
        attempt = pending[-1]
        retention.decide(
            session=turn.session,
            attempt=attempt,
            accepted=True,
            customer=turn.customer,
            conversation=turn.conversation,
        )
        todo = retention.apply_offer(session=turn.session, customer=turn.customer, offer=attempt.offer)
        events: list[EventType] = [
            SlotSet("retention_state", None),
            SlotSet("offer_kind", attempt.offer.kind.value),
        ]
        if todo is not None:
            events.append(SlotSet("callback_when", personal_follow_up(turn)))
        return events


def personal_follow_up(turn: Turn) -> str:
    """The offer promises a person's follow-up, not a live chat now: a callback case in the agents'
    queue with a promised time, which the answer names."""
    now, hours = utcnow(), current_settings().opening_hours()
    due = callback_promise(hours=hours, now=now)
    handoff, _ = open_handoff(
        session=turn.session,
        customer=turn.customer,
        conversation=turn.conversation,
        reason="retention",
        mode=HANDOFF_CALLBACK,
        callback_by=due,
        now=now,
    )
    return due_phrase(handoff.callback_by or due, now, turn.customer.timezone)


class ActionDeclineRetention(CRMAction):
    """The customer says no: one more, different offer at most; then the no is respected."""

    def name(self) -> str:
        return "action_decline_retention"

    def act(self, turn: Turn) -> list[EventType]:
        return after_a_no(turn, attempts_so_far(turn))

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("retention_state", "exhausted")]


class ActionRecordCancellation(CRMAction):
    """A most valuable customer declined the person offered: the no is respected."""

    def name(self) -> str:
        return "action_record_cancellation"

    def act(self, turn: Turn) -> list[EventType]:
        return give_up(turn)

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("retention_state", "exhausted")]


class ActionFinishCancellation(CRMAction):
    """Keep the exit answer with the save record (a valuable customer was offered a person before)."""

    def name(self) -> str:
        return "action_finish_cancellation"

    def act(self, turn: Turn) -> list[EventType]:
        retention.record_exit_answer(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            attempts=attempts_so_far(turn),
            answer=turn.tracker.get_slot("exit_answer") or "",
        )
        return [
            SlotSet("offer_human", False),
            SlotSet("exit_answer", None),
            SlotSet("retention_state", None),
        ]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("offer_human", True)]
