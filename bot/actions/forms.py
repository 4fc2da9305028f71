"""Every question the bot asks can be left, the same way in every form (data/rules/forms.yml).

The forms' slot mappings refuse the intents that are not answers (domain.yml, `not_intent`), so the
form lets go and the rules decide: a request for a person, "never mind", goodbye or a request with a
journey of its own run `action_leave_form` (it notes what was gathered and what the form was, for
the words that follow) and Rasa's `action_deactivate_loop`. After an FAQ, small talk or a request
answered in one message, Rasa returns to the form and `AskAgain` asks its question again, after a
request first offering to finish the unfinished one. Nonsense is judged by the forms' validators
(`LeavableFormValidation`): the question is asked again, and the second miss in a row offers a
person with it.
"""

from __future__ import annotations

import abc
import re
from typing import Any, ClassVar

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.base import CareLoopAction, CRMAction, Turn, latest_intent
from bot.actions.describing import says_nothing_happened
from bot.crm.queries import log_interaction

REQUESTED_SLOT = "requested_slot"
MISSES = "form_misses"
STEM = {
    "complaint_form": "complaint",
    "contact_form": "contact",
    "exit_form": "exit",
    "feedback_form": "feedback",
    "callback_form": "callback",
}
# What each form collects (and the hints its questions depend on): forgotten when the form is left,
# except for a person, who takes the conversation over with it.
COLLECTS = {
    "complaint_form": ("complaint_category", "complaint_order", "complaint_description", "order_hint"),
    "contact_form": ("contact_value", "contact_hint"),
    "exit_form": ("exit_answer",),
    "feedback_form": ("feedback_text",),
    "callback_form": ("callback_contact", "callback_hint"),
}
FORM_OF_SLOT = {slot: form for form, slots in COLLECTS.items() for slot in slots}
# What gathered facts the CRM notes when a form is left: labels and numbers, never free words.
NOTED = ("complaint_category", "complaint_order")
# Requests answered in one message between a form's questions (their own rules answer them): the
# question that follows first offers to finish the unfinished form.
ANSWERED_BETWEEN = frozenset({"case_status", "opt_out", "opt_in", "EXTERNAL_case_answer"})
BACK_TO = {
    "complaint_form": "utter_back_to_complaint",
    "contact_form": "utter_back_to_contact",
    "exit_form": "utter_back_to_exit",
    "feedback_form": "utter_back_to_feedback",
    "callback_form": "utter_back_to_callback",
}
UNSURE = frozenset({"nlu_fallback", "out_of_scope"})
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_run(token: str) -> int:
    """The longest stretch of `token` typed along one keyboard row, either way."""
    rows = KEYBOARD_ROWS + tuple(row[::-1] for row in KEYBOARD_ROWS)
    longest = 0
    for start in range(len(token)):
        for end in range(len(token), start + longest, -1):
            if any(token[start:end] in row for row in rows):
                longest = end - start
                break
    return longest


def is_word(token: str) -> bool:
    """A token that could be a word: letters with a vowel, not a mash along a keyboard row."""
    if not 2 <= len(token) <= 24 or not any(vowel in token for vowel in "aeiouy"):
        return False
    if len(token) >= 4 and (len(set(token)) <= 2 or _keyboard_run(token) >= max(4, 0.6 * len(token))):
        return False  # "jjjj", "jkjkjk", "asdfgh", "qwerty"
    return True


def has_words(text: str) -> bool:
    """Whether a free answer says anything in words ("sdfgh", "???" and "1234" do not)."""
    return any(is_word(token) for token in re.findall(r"[a-z']+", text.lower().replace("'", "")))


def _took_anything(events: list[EventType]) -> bool:
    """Whether validation set a slot: Rasa's form rejects the message only when none was set, so
    nothing may be added then (a counter reset would keep the customer in the question)."""
    return any(e.get("event") == "slot" and e.get("name") != REQUESTED_SLOT for e in events)


def _answered(events: list[EventType], slot: str | None) -> bool:
    return any(
        e.get("event") == "slot" and e.get("name") == slot and e.get("value") is not None for e in events
    )


class LeavableFormValidation(FormValidationAction, abc.ABC):
    """A form validator that judges nonsense the way every form does.

    A free answer (`free_text` slots) without a word in it is not taken; an answer to any other
    question is a miss when the message was not understood (nlu_fallback, out_of_scope) and gave
    nothing the question could use. A miss is said ("Sorry, I didn't catch that") before the form
    asks again; the second miss in a row, or the first for an irritable customer, offers a person.
    """

    free_text: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def name(self) -> str: ...  # abstract, so that rasa_sdk does not register this base

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        asked = tracker.get_slot(REQUESTED_SLOT)
        if asked is None:  # the form starts: nothing was asked yet
            return [*await super().run(dispatcher, tracker, domain), SlotSet(MISSES, 0.0)]
        intent, _ = latest_intent(tracker)
        text = tracker.latest_message.get("text") or ""
        wordless = asked in self.free_text and not text.startswith("/") and not has_words(text)
        if wordless:
            events: list[EventType] = [SlotSet(asked, None), SlotSet(REQUESTED_SLOT, asked)]
        else:
            events = await super().run(dispatcher, tracker, domain)
            if not _took_anything(events):
                return events  # a refused intent: the form must reject, so the rules answer it
        if not wordless and (intent not in UNSURE or _answered(events, asked)):
            return [*events, SlotSet(MISSES, 0.0)]
        misses = int(tracker.get_slot(MISSES) or 0) + 1
        impatient = tracker.get_slot("temperament") == "irritable"
        offer = misses >= 2 or impatient
        dispatcher.utter_message(response="utter_form_offer_person" if offer else "utter_form_unclear")
        return [*events, SlotSet(MISSES, float(misses))]


class ValidateExitForm(LeavableFormValidation):
    """The exit question takes any answer in words."""

    free_text = frozenset({"exit_answer"})

    def name(self) -> str:
        return "validate_exit_form"


class ValidateFeedbackForm(LeavableFormValidation):
    """Feedback asked for takes any answer in words."""

    free_text = frozenset({"feedback_text"})

    def name(self) -> str:
        return "validate_feedback_form"


def leaving_events(tracker: Tracker) -> list[EventType]:
    """Name the form being left; forget what it gathered unless a person takes over with it."""
    form = (tracker.active_loop or {}).get("name")
    intent, _ = latest_intent(tracker)
    events: list[EventType] = [SlotSet("left_form", STEM.get(form or "")), SlotSet(MISSES, 0.0)]
    if intent != "request_human":
        events += [SlotSet(slot, None) for slot in COLLECTS.get(form or "", ())]
    if form == "exit_form":  # the save attempt is over either way (action_finish_cancellation's reset)
        events.append(SlotSet("retention_state", None))
    if form == "callback_form":  # the request stays filed, answered in this chat: nothing more to ask
        events.append(SlotSet("callback_ask", None))
    return events


class ActionLeaveForm(CRMAction):
    """Before a form ends early: note in the CRM which form was left, why, and what it had gathered."""

    def name(self) -> str:
        return "action_leave_form"

    def act(self, turn: Turn) -> list[EventType]:
        form = (turn.tracker.active_loop or {}).get("name") or ""
        intent, _ = latest_intent(turn.tracker)
        slots = COLLECTS.get(form, ())
        log_interaction(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            kind="form_left",
            intent=intent,
            data={
                "form": STEM.get(form),
                "gathered": [slot for slot in slots if turn.tracker.get_slot(slot) is not None],
                **{slot: turn.tracker.get_slot(slot) for slot in NOTED if slot in slots},
            },
        )
        return leaving_events(turn.tracker)

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return leaving_events(tracker)  # leaving never depends on the CRM


class AskAgain(CareLoopAction, abc.ABC):
    """Ask a form's question; after a request answered in between, first offer to finish the form."""

    @property
    @abc.abstractmethod
    def slot(self) -> str:
        """The form slot whose question this asks (a class attribute in each subclass)."""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    def question(self, tracker: Tracker) -> str:
        return f"utter_ask_{self.slot}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent, _ = latest_intent(tracker)
        if intent in ANSWERED_BETWEEN:
            dispatcher.utter_message(response=BACK_TO[FORM_OF_SLOT[self.slot]])
        dispatcher.utter_message(response=self.question(tracker))
        return []


class ActionAskComplaintCategory(AskAgain):
    slot = "complaint_category"


class ActionAskComplaintOrder(AskAgain):
    """Offer the latest order when there is one; a guest is asked for the order number."""

    slot = "complaint_order"

    def question(self, tracker: Tracker) -> str:
        guest = tracker.get_slot("last_order_number") is None
        return "utter_ask_complaint_order_guest" if guest else "utter_ask_complaint_order"


class ActionAskComplaintDescription(AskAgain):
    """Ask what happened; an answer that said nothing about it ("thanks", "ok") is asked for again."""

    slot = "complaint_description"

    def question(self, tracker: Tracker) -> str:
        asked_already = tracker.get_slot(REQUESTED_SLOT) == self.slot
        said = tracker.latest_message.get("text") or ""
        if asked_already and says_nothing_happened(said):
            return "utter_complaint_describe_more"
        return "utter_ask_complaint_description"


class ActionAskContactValue(AskAgain):
    slot = "contact_value"


class ActionAskExitAnswer(AskAgain):
    slot = "exit_answer"


class ActionAskFeedbackText(AskAgain):
    slot = "feedback_text"


class ActionAskCallbackContact(AskAgain):
    slot = "callback_contact"
