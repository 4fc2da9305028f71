"""Issue 19 (and 22): every code the CRM stores has words; the console never shows a raw code."""

from __future__ import annotations

import enum

import pytest

import bot.crm.models.enums as vocabularies
from bot.crm.handoffs import REASON_WEIGHT
from bot.crm.labels import HANDOFF_MODES, HANDOFF_REASONS, LABELS, customer_tier, label
from bot.crm.models import HANDOFF_CALLBACK, HANDOFF_LIVE, Segment, Temperament

ENUMS = [
    value
    for value in vars(vocabularies).values()
    if isinstance(value, type) and issubclass(value, enum.Enum) and value.__module__ == vocabularies.__name__
]


@pytest.mark.parametrize("vocabulary", ENUMS, ids=lambda e: e.__name__)
def test_every_state_of_every_vocabulary_has_a_label(vocabulary: type[enum.Enum]) -> None:
    missing = [m.value for m in vocabulary if m.value not in LABELS.get(vocabulary.__name__, {})]
    assert missing == [], f"add labels for {vocabulary.__name__} in bot/crm/labels.py"


def test_every_handoff_reason_and_mode_has_a_label() -> None:
    assert set(REASON_WEIGHT) <= set(HANDOFF_REASONS)
    assert set(HANDOFF_MODES) == {HANDOFF_LIVE, HANDOFF_CALLBACK}


def test_the_codes_the_issue_names_read_as_words() -> None:
    assert label("customer_request", "handoff_reason") == "the customer asked for a person"
    assert label(Temperament.TRIAL_SEEKING) == "trial-seeking: likes new things"
    assert label("trial_seeking", "Temperament") == label(Temperament.TRIAL_SEEKING)
    assert label(Temperament.UNKNOWN) == label("unknown") == "not known yet"
    assert label("something_new") == "something new"  # an unlabelled code is readable, never hidden


def test_a_customer_only_ever_reads_their_tier_in_customer_words() -> None:
    tiers = {s: customer_tier(s) for s in Segment}
    assert tiers == {
        Segment.MVC: "Gold",
        Segment.MCC: "Silver",
        Segment.STANDARD: "valued",
        Segment.BZ: "valued",
    }
    assert not any(code in name for name in tiers.values() for code in ("MVC", "MCC", "BZ"))
