"""The blind NLU set is a fair second test: large, disjoint from training and the team's held-out set,
and never read by training.

It was written from scenario descriptions by a hand that did not read the training data or the
held-out set; these tests are what checks it against them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.ops import model
from tests.nlu.test_heldout import CONTRACT_INTENTS, base_intent, examples_by_intent, normalise

MIN_PER_INTENT = 40
MIN_OUT_OF_SCOPE = 300
MIN_FAQ = 40


@pytest.fixture
def blind(project_root: Path) -> dict[str, list[str]]:
    return examples_by_intent(project_root / "tests" / "nlu" / "blind.yml")


def trained_examples(project_root: Path) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for path in sorted((project_root / "data").rglob("*.yml")):
        for intent, examples in examples_by_intent(path).items():
            merged.setdefault(intent, []).extend(examples)
    return merged


def collisions(blind: dict[str, list[str]], other: dict[str, list[str]]) -> list[str]:
    known = {normalise(e) for examples in other.values() for e in examples}
    return [e for examples in blind.values() for e in examples if normalise(e) in known]


def test_blind_set_has_40_messages_per_intent_and_300_out_of_scope(blind: dict[str, list[str]]) -> None:
    counts: Counter[str] = Counter()
    for intent, examples in blind.items():
        counts[base_intent(intent)] += len(examples)
    assert set(counts) == CONTRACT_INTENTS
    assert {i: n for i, n in counts.items() if n < MIN_PER_INTENT} == {}
    assert counts["out_of_scope"] >= MIN_OUT_OF_SCOPE
    assert counts["faq"] >= MIN_FAQ


def test_blind_faq_topics_are_topics_the_bot_answers(blind: dict[str, list[str]], project_root: Path) -> None:
    trained_topics = {i for i in trained_examples(project_root) if base_intent(i) == "faq"}
    blind_topics = {i for i in blind if base_intent(i) == "faq"}
    assert blind_topics - trained_topics == set()
    assert len(blind_topics) == len(trained_topics)


def test_no_blind_message_is_in_the_training_data(blind: dict[str, list[str]], project_root: Path) -> None:
    assert collisions(blind, trained_examples(project_root)) == []


def test_no_blind_message_is_in_the_team_heldout_set(blind: dict[str, list[str]], project_root: Path) -> None:
    assert collisions(blind, examples_by_intent(project_root / "tests" / "nlu" / "heldout.yml")) == []


def test_blind_set_has_no_duplicates(blind: dict[str, list[str]]) -> None:
    seen = Counter(normalise(e) for examples in blind.values() for e in examples)
    assert [text for text, n in seen.items() if n > 1] == []


def test_blind_set_is_never_a_training_input(project_root: Path) -> None:
    """Training reads model.TRAINING_INPUTS only; none of them is, holds or names the blind set."""
    inputs = [project_root / name for name in model.TRAINING_INPUTS]
    assert all(project_root / "tests" not in [p, *p.parents] for p in inputs)
    files = [f for p in inputs for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    assert [f for f in files if f.name == "blind.yml"] == []
    assert [f for f in files if f.suffix in {".yml", ".yaml", ".py"} and "blind.yml" in f.read_text()] == []
