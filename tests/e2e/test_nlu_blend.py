"""The real model reads intents with the regularised regression alone (config.yml: no DIET).

Every parse still explains itself: `intent_votes` names the classifiers that ran, and with no DIET
before it the regression's own top intent is the answer, with its own confidence.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def pipeline(project_root: Path) -> list[str]:
    config = YAML(typ="safe").load((project_root / "config.yml").read_text())
    return [component["name"] for component in config["pipeline"]]


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
def test_a_clear_message_is_read_by_the_regression_alone(
    stack: Stack, project_root: Path, text: str, intent: str
) -> None:
    assert "DIETClassifier" not in pipeline(project_root)
    parsed = parse(stack, text)
    votes = parsed["intent_votes"]
    assert isinstance(votes, dict) and set(votes) == {"logistic_regression"}
    regression = votes["logistic_regression"]
    top = parsed["intent"]
    assert isinstance(top, dict) and top["name"] == regression["name"] == intent
    assert top["confidence"] == pytest.approx(regression["confidence"])
    ranking = parsed["intent_ranking"]
    assert isinstance(ranking, list) and ranking[0]["name"] == intent
    assert sum(entry["confidence"] for entry in ranking) <= 1.0 + 1e-6


def test_entities_are_still_read(stack: Stack) -> None:
    parsed = parse(stack, "my email is anna@example.com and the order is CL-104233")
    found = {(e["entity"], e["value"]) for e in parsed["entities"]}  # type: ignore[union-attr]
    assert ("email", "anna@example.com") in found
    assert ("order_id", "CL-104233") in found
