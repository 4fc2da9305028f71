"""Whether a customer's words say what happened, or only that something did.

"I want to complain about my order" asks for a complaint without telling the team anything, and
"thanks", "ok" or "yes" answer "what happened?" without an answer: in both cases the bot asks.
"""

from __future__ import annotations

import re

from bot.crm.complaints import Harm

# Words that answer nothing on their own: thanks, yes, no, greetings, hesitation.
FILLER = frozenset(
    "thanks thank thx ty you ok okay k kk yes yeah yep yup no nope sure fine hi hello hey please pls "
    "cool alright right great good nothing idk dunno hmm hm um uh so well just".split()
)
# Words of the request itself, its category and feelings: "a complaint about billing, not happy".
ASKING = frozenset(
    "i i'm im i'd am me my we our us your you the a an and or of for from with about regarding "
    "concerning to in on at it its it's is was are were be been have has had do did does want would "
    "like need make file lodge raise report complain complaining complaint complaints problem problems "
    "issue issues something there some order orders purchase last recent recently week service "
    "delivery billing bill product products app website quality can could help not happy unhappy "
    "satisfied disappointed upset angry annoyed frustrated this that what wrong".split()
)
WORD = re.compile(r"[a-z][a-z']*")


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("’", "'"))


def says_nothing_happened(text: str) -> bool:
    """True for an answer made only of thanks, yes, no and the like (or of no words at all)."""
    return all(word in FILLER for word in words_of(text))


def describes_what_happened(text: str) -> bool:
    """Whether an opening complaint already says what happened ("the package was damaged"), not
    only that the customer has a complaint about something."""
    words = words_of(text)
    told = [word for word in words if word not in FILLER and word not in ASKING]
    return len(words) >= 3 and len(told) >= 1


# What went wrong, family by family: "late and damaged" is two problems, "broken and cracked" one.
PROBLEM_CUES: dict[str, tuple[str, ...]] = {
    "late": (
        "late",
        "delayed",
        "delay",
        "took ages",
        "never arrived",
        "not arrived",
        "hasn't arrived",
        "has not arrived",
        "still waiting for",
    ),
    "damage": (
        "damaged",
        "damage",
        "broken",
        "broke",
        "smashed",
        "crushed",
        "cracked",
        "leaking",
        "leaked",
        "spilled",
        "spilt",
        "all over",
        "soaked",
        "dented",
        "torn",
        "ripped",
        "ruined",
        "shattered",
        "squashed",
        "burst",
        "fell apart",
        "destroyed",
    ),
    "missing": ("missing", "not in the box", "wasn't in", "was not in", "left out", "incomplete"),
    "wrong": (
        "wrong item",
        "wrong product",
        "wrong size",
        "wrong colour",
        "wrong color",
        "not what i ordered",
        "sent the wrong",
        "got the wrong",
    ),
    "faulty": ("doesn't work", "does not work", "stopped working", "won't turn on", "faulty", "defective"),
    "money": (
        "charged twice",
        "double charged",
        "charged me twice",
        "overcharged",
        "over charged",
        "paid twice",
        "never refunded",
        "not refunded",
        "no refund",
        "refund never",
        "lost money",
        "took my money",
        "extra charge",
        "charged me for",
        "wrong amount",
    ),
}


def _says(lowered: str, cue: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(cue)}(?!\w)", lowered) is not None


def harm_in(text: str | None) -> Harm:
    """What the customer's words say went wrong: damage, money lost, how many different things."""
    lowered = " ".join((text or "").lower().replace("’", "'").split())
    found = {family for family, cues in PROBLEM_CUES.items() if any(_says(lowered, cue) for cue in cues)}
    return Harm(damaged="damage" in found, money_lost="money" in found, problems=max(1, len(found)))
