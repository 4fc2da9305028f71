"""The intent blend: a weighted average of two classifiers' confidences, best first."""

from __future__ import annotations

import pytest

from bot.nlu.blend import blend


def ranking(*pairs: tuple[str, float]) -> list[dict[str, object]]:
    return [{"name": name, "confidence": confidence} for name, confidence in pairs]


def test_each_intent_gets_the_weighted_average_of_both_confidences() -> None:
    diet = ranking(("affirm", 1.0))
    regression = ranking(("goodbye", 0.6), ("affirm", 0.3), ("thank", 0.1))
    blended = blend(diet, regression, 0.3)
    assert [entry["name"] for entry in blended] == ["affirm", "goodbye", "thank"]
    assert [entry["confidence"] for entry in blended] == pytest.approx([0.51, 0.42, 0.07])


def test_a_confident_mistake_of_one_classifier_is_outvoted_and_comes_out_unsure() -> None:
    diet = ranking(("affirm", 0.99), ("goodbye", 0.01))
    regression = ranking(("goodbye", 0.8), ("affirm", 0.2))
    top = blend(diet, regression, 0.3)[0]
    assert top["name"] == "goodbye"
    assert top["confidence"] == pytest.approx(0.563)


def test_an_intent_only_one_classifier_ranks_counts_as_zero_for_the_other() -> None:
    blended = blend(ranking(("greet", 0.9), ("faq", 0.1)), ranking(("greet", 1.0)), 0.5)
    assert blended == ranking(("greet", pytest.approx(0.95)), ("faq", pytest.approx(0.05)))


def test_ties_are_ordered_by_name_so_the_result_does_not_depend_on_input_order() -> None:
    assert [e["name"] for e in blend(ranking(("b", 0.5), ("a", 0.5)), [], 1.0)] == ["a", "b"]


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend([], [], weight)
