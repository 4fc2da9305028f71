"""What the simulated customers say: three realistic multi-turn conversations, typed as text.

A complaint about a broken delivery, a membership cancellation the bot tries to save (two offers
declined, the exit question answered), and an order question followed by a refund. `{order}`
becomes the customer's own order number.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.population import ChatCustomer


@dataclass(frozen=True)
class Script:
    name: str
    turns: tuple[str, ...]

    def for_customer(self, customer: ChatCustomer) -> list[str]:
        return [turn.format(order=customer.order_number) for turn in self.turns]


COMPLAINT = Script(
    "complaint",
    (
        "hi",
        "My parcel arrived crushed and the mug inside is broken, I'm really disappointed",
        "{order}",
        "thanks",
        "bye",
    ),
)
RETENTION = Script(
    "retention",
    (
        "I want to cancel my membership",
        "it's just too expensive",
        "no thanks",
        "no",
        "the coffee got too pricey for me",
        "bye",
    ),
)
ORDER_QUESTION = Script(
    "order question",
    (
        "hello",
        "where is my order?",
        "I want a refund for order {order}",
        "thank you",
        "bye",
    ),
)
SCRIPTS = (COMPLAINT, RETENTION, ORDER_QUESTION)


def script_for(index: int) -> Script:
    """The scripts in turn, so every load level holds the same mix."""
    return SCRIPTS[index % len(SCRIPTS)]
