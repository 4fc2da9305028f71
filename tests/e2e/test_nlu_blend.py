"""The real model reads intents with DIET and a logistic regression blended (config.yml)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def diet_weight(project_root: Path) -> float:
    config = YAML(typ="safe").load((project_root / "config.yml").read_text())
    (blend,) = [c for c in config["pipeline"] if c["name"].endswith(".BlendedIntentClassifier")]
    return float(blend["diet_weight"])


def parse(stack: Stack, text: str) -> dict[str, object]:
    response = httpx.post(
        f"{stack.settings.rasa_url}/model/parse",
        params={"token": stack.settings.rasa_token},
        json={"text": text},
        timeout=30,
    )
    response.raise_for_status()
    parsed: dict[str, object] = response.json()
    return parsed


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I want to cancel my subscription", "cancel_subscription"),
        ("where is my order?", "check_order_status"),
    ],
)
def test_a_clear_message_is_read_by_both_classifiers_and_blended(
    stack: Stack, project_root: Path, text: str, intent: str
) -> None:
    weight = diet_weight(project_root)
    parsed = parse(stack, text)
    votes = parsed["intent_votes"]
    assert isinstance(votes, dict)
    diet, regression = votes["diet"], votes["logistic_regression"]
    assert diet["name"] == regression["name"] == intent
    top = parsed["intent"]
    assert isinstance(top, dict) and top["name"] == intent
    expected = weight * diet["confidence"] + (1 - weight) * regression["confidence"]
    assert top["confidence"] == pytest.approx(expected)
    ranking = parsed["intent_ranking"]
    assert isinstance(ranking, list) and ranking[0]["name"] == intent
    assert sum(entry["confidence"] for entry in ranking) <= 1.0 + 1e-6
