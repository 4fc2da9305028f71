"""Judging the NLU on an 80/20 split of the training data: the scores, and one real tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ops import nlu_split


def test_macro_f1_averages_the_labels_of_the_gold_readings() -> None:
    gold = ["greet", "greet", "goodbye", "goodbye"]
    said = ["greet", "goodbye", "goodbye", "thank"]
    # greet: precision 1, recall 1/2 → 2/3; goodbye: precision 1/2, recall 1/2 → 1/2; thank is no label.
    assert nlu_split.macro_f1(gold, said) == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-4)


def test_a_label_never_said_right_scores_zero() -> None:
    assert nlu_split.macro_f1(["a", "b"], ["b", "a"]) == 0.0
    assert nlu_split.recall(["a", "b"], ["b", "a"], "a") == 0.0
    assert nlu_split.recall(["a"], ["a"], "out_of_scope") is None


def row(gold: str, intent: str, confidence: float, runner_up: float, diet: str, regression: str) -> dict:
    votes = {"diet": diet, "logistic_regression": regression}
    return {"gold": gold, "intent": intent, "confidence": confidence, "runner_up": runner_up, "votes": votes}


def test_score_reads_the_blend_and_each_classifier_and_who_would_be_asked() -> None:
    rows = [
        row("greet", "greet", 0.9, 0.05, "greet", "greet"),
        row("out_of_scope", "out_of_scope", 0.42, 0.40, "faq", "out_of_scope"),  # right, but ambiguous
        row("goodbye", "affirm", 0.35, 0.30, "affirm", "goodbye"),  # wrong, under the threshold
        row("affirm", "goodbye", 0.8, 0.1, "goodbye", "goodbye"),  # wrong and sure of it
    ]
    figures = nlu_split.score(rows, threshold=0.4, ambiguity=0.05)
    readers = figures["readers"]
    assert set(readers) == {"blended", "diet", "logistic_regression"}
    assert readers["blended"]["out_of_scope_recall"] == 1.0
    assert readers["diet"]["out_of_scope_recall"] == 0.0
    assert readers["logistic_regression"]["intent_macro_f1"] == pytest.approx(
        (1 + 1 + 2 / 3 + 0) / 4, abs=1e-4
    )
    assert figures["fallback"] == {
        "threshold": 0.4,
        "ambiguity_threshold": 0.05,
        "right_but_asked": 0.5,
        "wrong_but_asked": 0.5,
    }


def test_fallback_settings_are_read_from_the_config(project_root: Path) -> None:
    threshold, ambiguity = nlu_split.fallback_settings(project_root / "config.yml")
    assert 0 < threshold < 1 and 0 <= ambiguity < 1


TINY_CONFIG = """
recipe: default.v1
language: en
assistant_id: tiny
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 20
    random_seed: 1
  - name: bot.nlu.blended_classifier.BlendedIntentClassifier
    diet_weight: 0.3
  - name: FallbackClassifier
    threshold: 0.3
policies: []
"""

TINY_NLU = {
    "greet": ["hi", "hello", "hey there", "good morning", "hiya", "hello again", "hey", "morning all",
              "hi there", "greetings", "good evening", "howdy", "hey hey", "hello hello", "yo"],
    "goodbye": ["bye", "goodbye", "see you", "see you later", "bye bye", "cya", "take care now",
                "good night", "later", "farewell", "bye for now", "talk soon", "see ya", "ciao", "so long"],
    "out_of_scope": ["what is the capital of peru", "tell me a joke", "who won the match", "is it raining",
                     "write me a poem", "how tall is everest", "what is two plus two", "sing a song",
                     "who is the president", "recommend a film", "what is love", "how old is the moon",
                     "solve my homework", "translate cat to german", "best pizza in town"],
}  # fmt: skip


@pytest.mark.rasa
def test_a_real_split_run_trains_reads_and_scores(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(TINY_CONFIG)
    nlu = tmp_path / "nlu.yml"
    blocks = [f"- intent: {intent}\n  examples: |\n" + "".join(f"    - {e}\n" for e in examples)
              for intent, examples in TINY_NLU.items()]  # fmt: skip
    nlu.write_text('version: "3.1"\nnlu:\n' + "".join(blocks))
    output = tmp_path / "split.json"
    assert (
        nlu_split.main(["--seed", "3", "--config", str(config), "--nlu", str(nlu), "--output", str(output)])
        == 0
    )
    figures = json.loads(output.read_text())
    assert figures["messages"] == 9  # 20% of 15 examples, for each of 3 intents
    assert set(figures["readers"]) == {"blended", "diet", "logistic_regression"}
    for reader in figures["readers"].values():
        assert 0.0 <= reader["intent_macro_f1"] <= 1.0
    assert figures["fallback"]["threshold"] == 0.3
