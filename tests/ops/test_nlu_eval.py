"""make nlu-eval: both test sets scored from one `rasa test nlu`, side by side, with what costs most."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ops import nlu_eval
from bot.ops.nlu_eval import EvalSet


def write_set(path: Path, examples: dict[str, list[str]]) -> Path:
    items = "".join(
        f"- intent: {intent}\n  examples: |\n" + "".join(f"    - {e}\n" for e in texts)
        for intent, texts in examples.items()
    )
    path.write_text(f'version: "3.1"\nnlu:\n{items}')
    return path


def write_predictions(out_dir: Path, rows: list[tuple[str, str, str, float]]) -> None:
    """Rasa's intent_successes.json / intent_errors.json for (text, true, predicted, confidence)."""
    found = [
        {"text": text, "intent": true, "intent_prediction": {"name": pred, "confidence": conf}}
        for text, true, pred, conf in rows
    ]
    (out_dir / "intent_successes.json").write_text(
        json.dumps([f for f in found if f["intent"] == f["intent_prediction"]["name"]])
    )
    (out_dir / "intent_errors.json").write_text(
        json.dumps([f for f in found if f["intent"] != f["intent_prediction"]["name"]])
    )


@pytest.fixture
def two_sets(tmp_path: Path) -> tuple[EvalSet, EvalSet]:
    team = write_set(
        tmp_path / "team.yml",
        {
            "greet": ["hello there"],
            "complain": ["my order [CL-123456](order_id) is broken"],
            "out_of_scope": ["weather today"],
        },
    )
    blind = write_set(
        tmp_path / "blind.yml",
        {
            "greet": ["hiya"],
            "complain": ["I want to lodge a complaint", "beans were stale"],
            "out_of_scope": ["tell me a joke", "book a flight"],
        },
    )
    return EvalSet("heldout", team, tmp_path / "heldout.json"), EvalSet(
        "blind", blind, tmp_path / "blind.json"
    )


def test_one_run_over_both_sets_is_split_back_into_each_sets_figures(tmp_path: Path, two_sets) -> None:
    team, blind = two_sets
    write_predictions(
        tmp_path,
        [
            ("hello there", "greet", "greet", 0.9),
            ("my order CL-123456 is broken", "complain", "complain", 0.8),
            ("weather today", "out_of_scope", "out_of_scope", 0.9),
            ("hiya", "greet", "greet", 0.95),
            ("I want to lodge a complaint", "complain", "out_of_scope", 0.4),
            ("beans were stale", "complain", "complain", 0.7),
            ("tell me a joke", "out_of_scope", "out_of_scope", 0.9),
            ("book a flight", "out_of_scope", "greet", 0.3),
        ],
    )
    keys = nlu_eval.check_sets_are_disjoint((team, blind))
    nlu_eval.check_every_prediction_placed(tmp_path, keys)
    model = Path("careloop-test.tar.gz")
    team_figures = nlu_eval.summarise(tmp_path, model, team, keys["heldout"])
    blind_figures = nlu_eval.summarise(tmp_path, model, blind, keys["blind"])

    assert team_figures["messages"] == 3 and team_figures["intent_macro_f1"] == 1.0
    assert blind_figures["messages"] == 5
    assert blind_figures["in_scope_accuracy"] == round(2 / 3, 4)
    assert blind_figures["out_of_scope_recall"] == 0.5
    assert blind_figures["out_of_scope_precision"] == 0.5
    # greet: P 1/2 R 1 -> 0.6667; complain: P 1 R 1/2 -> 0.6667; out_of_scope: 0.5
    assert blind_figures["intent_macro_f1"] == round((0.6667 + 0.6667 + 0.5) / 3, 4)
    # Putting "book a flight" right lifts greet and out_of_scope (0.822); the complaint only 0.778.
    assert [(c["true"], c["predicted"], c["cost"]) for c in blind_figures["confusions"]] == [
        ("out_of_scope", "greet", round((1 + 0.8 + 2 / 3) / 3 - (2 / 3 + 2 / 3 + 0.5) / 3, 4)),
        ("complain", "out_of_scope", round((1 + 2 / 3 + 2 / 3) / 3 - (2 / 3 + 2 / 3 + 0.5) / 3, 4)),
    ]


def test_a_message_in_no_set_stops_the_evaluation(tmp_path: Path, two_sets) -> None:
    write_predictions(tmp_path, [("hello there", "greet", "greet", 0.9), ("not ours", "greet", "greet", 0.9)])
    keys = nlu_eval.check_sets_are_disjoint(two_sets)
    with pytest.raises(SystemExit, match="1 messages found in no test set"):
        nlu_eval.check_every_prediction_placed(tmp_path, keys)


def test_sets_sharing_a_message_are_refused(tmp_path: Path) -> None:
    one = write_set(tmp_path / "one.yml", {"greet": ["hello  there"]})
    other = write_set(tmp_path / "other.yml", {"greet": ["hello there"]})
    with pytest.raises(SystemExit, match="1 messages are in more than one test set"):
        nlu_eval.check_sets_are_disjoint(
            (EvalSet("a", one, tmp_path / "a"), EvalSet("b", other, tmp_path / "b"))
        )


def test_confusions_are_ranked_by_the_macro_f1_they_cost_not_by_their_count() -> None:
    # Three out-of-scope messages taken for greet cost less macro-F1 than one of the two refunds
    # taken for complain: 3 of 30 out-of-scope messages is a small share, 1 of 2 refunds is half.
    pairs = (
        [("out_of_scope", "out_of_scope")] * 27
        + [("out_of_scope", "greet")] * 3
        + [("greet", "greet")] * 10
        + [("request_refund", "request_refund"), ("request_refund", "complain")]
        + [("complain", "complain")] * 10
    )
    ranked = nlu_eval.costly_confusions(pairs)
    assert [(c["true"], c["predicted"], c["messages"]) for c in ranked] == [
        ("request_refund", "complain", 1),
        ("out_of_scope", "greet", 3),
    ]
    assert ranked[0]["cost"] > ranked[1]["cost"] > 0


def test_only_the_ten_costliest_confusions_are_kept() -> None:
    pairs = [(f"intent_{i}", f"intent_{i}") for i in range(12)] + [
        (f"intent_{i}", f"intent_{(i + 1) % 12}") for i in range(12)
    ]
    assert len(nlu_eval.costly_confusions(pairs)) == 10


def test_label_scores_follow_sklearns_definitions() -> None:
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")]
    # a: P 1/1 R 1/2; b: P 1/3 R 1/1; c: never predicted, P 0 R 0 F1 0
    assert nlu_eval.label_scores(pairs) == {
        "a": {"f1-score": 0.6667, "precision": 1.0, "recall": 0.5, "support": 2},
        "b": {"f1-score": 0.5, "precision": 0.3333, "recall": 1.0, "support": 1},
        "c": {"f1-score": 0.0, "precision": 0.0, "recall": 0.0, "support": 1},
    }


def test_the_side_by_side_shows_both_sets_and_the_gap(capsys) -> None:
    def figures(name: str, f1: float, oos_recall: float) -> dict:
        return {
            "model": "careloop-x.tar.gz",
            "heldout": f"tests/nlu/{name}.yml",
            "messages": 10,
            "intent_macro_f1": f1,
            "in_scope_accuracy": f1,
            "out_of_scope_recall": oos_recall,
            "out_of_scope_precision": 0.5,
            "response_selector_accuracy": None,
            "below_fallback_threshold": 0.1,
            "fallback_threshold": 0.5,
            "intents": {"greet": {"f1-score": f1, "precision": f1, "recall": f1, "support": 5}},
            "confusions": [{"true": "greet", "predicted": "out_of_scope", "messages": 2, "cost": 0.1}],
        }

    nlu_eval.print_side_by_side(figures("heldout", 0.95, 0.9), figures("blind", 0.7, 0.6))
    shown = capsys.readouterr().out
    assert "intent macro-F1                  0.950   0.700  +0.250" in shown
    assert "out_of_scope recall              0.900   0.600  +0.300" in shown
    assert "greet                       0.950    5   0.700    5  +0.250" in shown
    assert shown.count("greet → out_of_scope") == 2


@pytest.mark.rasa
def test_the_real_model_scores_two_sets_in_one_rasa_run(tmp_path: Path, two_sets) -> None:
    model = nlu_eval.newest_model()  # the mechanics, not the accuracy: any trained model will do
    out = tmp_path / "out"
    figures = nlu_eval.evaluate(model, two_sets, out)
    assert {name: f["messages"] for name, f in figures.items()} == {"heldout": 3, "blind": 5}
    assert set(figures["heldout"]["intents"]) == {"greet", "complain", "out_of_scope"}
    assert 0 <= figures["blind"]["intent_macro_f1"] <= 1
