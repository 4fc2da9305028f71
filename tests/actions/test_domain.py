"""The domain and the action server agree on what exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rasa_sdk.executor import ActionExecutor
from ruamel.yaml import YAML


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_every_registered_action_is_in_the_domain_and_back(project_root: Path) -> None:
    executor = ActionExecutor()
    executor.register_package("bot.actions")
    domain = _yaml(project_root / "domain.yml")
    assert set(executor.actions) == set(domain["actions"])


def test_every_response_used_in_rules_and_stories_exists(project_root: Path) -> None:
    domain = _yaml(project_root / "domain.yml")
    used, defined = set(), set(domain["responses"])
    for path in (project_root / "data").rglob("*.yml"):
        content = _yaml(path) or {}
        for item in content.get("rules", []) + content.get("stories", []):
            used |= {s["action"] for s in item["steps"] if str(s.get("action", "")).startswith("utter_")}
        defined |= {name.split("/")[0] for name in content.get("responses", {})}  # retrieval answers
    assert used <= defined


def test_response_templates_only_use_slots_the_domain_declares(project_root: Path) -> None:
    import re
    import string

    domain = _yaml(project_root / "domain.yml")
    slots = set(domain["slots"])
    # A response an action speaks itself may be filled with values the action passes (a case's
    # number, its team): those names must appear in the actions' code, quoted, like the response.
    code = "".join(p.read_text() for p in (project_root / "bot" / "actions").glob("*.py"))
    quoted = set(re.findall(r'"(\w+)"', code))
    for name, variations in domain["responses"].items():
        passed = quoted if name in quoted else set()
        for variation in variations:
            fields = {f for _, f, _, _ in string.Formatter().parse(variation.get("text", "")) if f}
            assert fields <= slots | passed, f"{name} uses undeclared slots {fields - slots - passed}"


def _can_both_match(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> bool:
    """Two variants' conditions can hold at once unless they want one slot at different values."""
    wanted = {c["name"]: c["value"] for c in first}
    return not any(c["name"] in wanted and wanted[c["name"]] != c["value"] for c in second)


def test_no_two_conditional_variants_of_a_response_can_match_at_once(project_root: Path) -> None:
    # Rasa 3.6 picks at random among ALL the conditional variants that match (rasa/core/nlg/
    # generator.py), so two that can match together say either at random: each pair must want one
    # slot at different values (`null` stands for a slot that is not set).
    domain = _yaml(project_root / "domain.yml")
    overlapping = []
    for name, variations in domain["responses"].items():
        conditioned = [(i, v["condition"]) for i, v in enumerate(variations) if v.get("condition")]
        for n, (i, first) in enumerate(conditioned):
            for j, second in conditioned[n + 1 :]:
                if _can_both_match(first, second):
                    overlapping.append(f"{name}: variants {i} and {j}")
    assert not overlapping, "\n".join(overlapping)


def test_the_overlap_check_finds_variants_that_can_match_together() -> None:
    dependent = [{"type": "slot", "name": "temperament", "value": "dependent"}]
    trouble = [{"type": "slot", "name": "system_trouble", "value": True}]
    fine = [*dependent, {"type": "slot", "name": "system_trouble", "value": False}]
    assert _can_both_match(dependent, trouble)  # a dependent customer when the CRM is down
    assert not _can_both_match(fine, trouble)
