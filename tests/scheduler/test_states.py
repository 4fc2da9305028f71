"""Outreach states are types: each lifecycle one enum, every state with its label beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scheduler.policy import Outcome, Verdict
from scheduler.states import (
    LIFECYCLES,
    DelayReason,
    Labelled,
    SenderOutcome,
    SendStatus,
    SkipReason,
    reason_label,
)

# A reason written as a bare string where the states are decided (e.g. `skip_reason = "x"`).
BARE_REASON = re.compile(
    r"""(skip_reason\b[^=\n]*=[^=\n]*|Verdict\([^,\n]+,\s*|SendResult\()["'][a-z_]+["']"""
)


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda c: c.__name__)
def test_every_state_has_its_own_label(lifecycle: type[Labelled]) -> None:
    labels = [state.label for state in lifecycle]
    assert all(label.strip() for label in labels)
    assert len(set(labels)) == len(labels)  # two states people could not tell apart would be one


def test_a_state_cannot_be_declared_without_its_label() -> None:
    with pytest.raises(TypeError):

        class Broken(Labelled):
            UNLABELLED = "unlabelled"


def test_a_state_is_stored_and_logged_as_its_value() -> None:
    assert SkipReason.NO_CONSENT == "no_consent" and f"{DelayReason.QUIET_HOURS}" == "quiet_hours"
    assert str(SenderOutcome.SENT) == "sent" and SendStatus("capped") is SendStatus.CAPPED


def test_a_stored_reason_reads_in_peoples_words() -> None:
    assert reason_label("with_a_person") == "in a chat with a person"
    assert reason_label("no_consent") == "no consent"
    assert reason_label("from_an_older_release") == "from_an_older_release"  # shown as stored
    assert reason_label(None) is None


def test_skip_and_delay_reasons_do_not_share_a_value() -> None:
    assert not {r.value for r in SkipReason} & {r.value for r in DelayReason}


def test_a_verdict_carries_a_typed_reason() -> None:
    verdict = Verdict(Outcome.DELAY, DelayReason.WITH_A_PERSON)
    assert verdict.reason is DelayReason.WITH_A_PERSON and verdict.reason.label == "in a chat with a person"


def test_no_state_is_written_as_a_bare_string(project_root: Path) -> None:
    sources = [*sorted((project_root / "scheduler").glob("*.py")), project_root / "bot/gateway/mailer.py"]
    bare = [
        f"{path.relative_to(project_root)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BARE_REASON.search(line)
    ]
    assert bare == []
