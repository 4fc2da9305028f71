"""The held-out NLU set is a fair test: disjoint from training data and covering the contract."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from ruamel.yaml import YAML

CONTRACT_INTENTS = {
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "bot_challenge",
    "complain",
    "request_human",
    "cancel_subscription",
    "give_reason",
    "check_order_status",
    "request_refund",
    "update_contact_details",
    "give_feedback",
    "rate",
    "opt_out",
    "opt_in",
    "faq",
    "out_of_scope",
}
MIN_PER_INTENT = 15
MIN_OUT_OF_SCOPE = 100
MIN_PER_FAQ_TOPIC = 3

# [text](entity), [text](entity:value) and [text]{"entity": ...} become just `text`.
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def plain_text(example: str) -> str:
    return ANNOTATION.sub(r"\1", example)


def normalise(example: str) -> str:
    """Lowercase words only: punctuation, emoji and spacing differences do not make a new sentence.

    A message without any word (emoji, punctuation) is compared as it is written.
    """
    text = plain_text(example).lower()
    return " ".join(re.findall(r"\w+", text)) or text.strip()


def examples_by_intent(path: Path) -> dict[str, list[str]]:
    """{intent (faq/<topic> kept whole): [example, ...]} from a Rasa YAML NLU file."""
    content = YAML(typ="safe").load(path.read_text()) or {}
    found: dict[str, list[str]] = {}
    for item in content.get("nlu", []):
        if "intent" in item:
            lines = [line.strip() for line in item["examples"].splitlines()]
            found.setdefault(item["intent"], []).extend(line[2:] for line in lines if line.startswith("- "))
    return found


@pytest.fixture
def heldout(project_root: Path) -> dict[str, list[str]]:
    return examples_by_intent(project_root / "tests" / "nlu" / "heldout.yml")


@pytest.fixture
def training(project_root: Path) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for path in sorted((project_root / "data").rglob("*.yml")):
        for intent, examples in examples_by_intent(path).items():
            merged.setdefault(intent, []).extend(examples)
    return merged


def base_intent(intent: str) -> str:
    return intent.split("/", 1)[0]


@pytest.mark.rasa
def test_no_heldout_sentence_is_in_the_training_data(
    heldout: dict[str, list[str]], training: dict[str, list[str]]
) -> None:
    trained = {normalise(e) for examples in training.values() for e in examples}
    leaked = [e for examples in heldout.values() for e in examples if normalise(e) in trained]
    assert leaked == []


@pytest.mark.rasa
def test_heldout_covers_every_contract_intent(heldout: dict[str, list[str]]) -> None:
    counts = Counter()
    for intent, examples in heldout.items():
        counts[base_intent(intent)] += len(examples)
    assert set(counts) == CONTRACT_INTENTS
    assert {i: n for i, n in counts.items() if n < MIN_PER_INTENT} == {}
    assert counts["out_of_scope"] >= MIN_OUT_OF_SCOPE


@pytest.mark.rasa
def test_heldout_asks_about_every_faq_topic(
    heldout: dict[str, list[str]], training: dict[str, list[str]]
) -> None:
    trained_topics = {i for i in training if base_intent(i) == "faq"}
    assert trained_topics, "no faq/<topic> examples in the training data"
    assert {
        t: len(heldout.get(t, [])) for t in trained_topics if len(heldout.get(t, [])) < MIN_PER_FAQ_TOPIC
    } == {}


@pytest.mark.rasa
def test_heldout_has_no_duplicates(heldout: dict[str, list[str]]) -> None:
    seen = Counter(normalise(e) for examples in heldout.values() for e in examples)
    assert [text for text, n in seen.items() if n > 1] == []
