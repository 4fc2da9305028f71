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
