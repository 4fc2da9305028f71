"""The Rasa project is valid: `rasa data validate` passes, warning only where Rasa 3.6 is wrong."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

# Rasa 3.6's validator reports three things that are correct by design, and nothing else may appear:
# - a form's `utter_ask_<slot>` responses, which the form action speaks (never a story step);
# - `EXTERNAL_*` intents, which the scheduler triggers and customers never type (no NLU data);
# - the retrieval intent `faq` "duplicated across domain files": the docs require it in the domain,
#   and Rasa merges it in again from the NLU data (rasa/shared/importers/importer.py);
# - a response an action speaks itself (its name is in bot/actions/, e.g. a case list's buttons),
#   which no story or rule can name.
FORM_ASK = re.compile(r"The utterance 'utter_ask_(\w+)' is not used in any story or rule\.")
EXTERNAL = re.compile(r"The intent 'EXTERNAL_\w+' is listed in the domain file, but is not found in the NLU")
RETRIEVAL = re.compile(r"The following duplicated intents have been found across multiple domain files: faq$")
UNUSED = re.compile(r"The utterance '(\w+)' is not used in any story or rule\.")


def spoken_by_actions(project_root: Path) -> set[str]:
    """The response names the actions' code mentions (they speak those through the dispatcher)."""
    code = "".join(p.read_text() for p in (project_root / "bot" / "actions").glob("*.py"))
    return set(re.findall(r'"(utter_\w+)"', code))


def form_slots(project_root: Path) -> set[str]:
    domain = YAML(typ="safe").load((project_root / "domain.yml").read_text())
    return {slot for form in domain["forms"].values() for slot in form["required_slots"]}


@pytest.mark.rasa
def test_rasa_data_validate_has_no_unexpected_warnings(project_root: Path) -> None:
    result = subprocess.run(
        [str(project_root / ".venvs/rasa/bin/rasa"), "data", "validate", "--fail-on-warnings"],
        cwd=project_root,
        capture_output=True,
        text=True,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    slots = form_slots(project_root)
    spoken = spoken_by_actions(project_root)
    unexpected = []
    for line in output.splitlines():
        if "UserWarning" not in line:
            continue
        ask = FORM_ASK.search(line)
        if (ask and ask.group(1) in slots) or EXTERNAL.search(line) or RETRIEVAL.search(line):
            continue
        unused = UNUSED.search(line)
        if unused and unused.group(1) in spoken:
            continue
        unexpected.append(line)
    assert unexpected == []
