"""Export the admins' NLU review decisions as a new Rasa NLU training file.

Each export writes the confirmed and corrected messages not exported before into a file of its
own, `review-<date>-<n>.yml` in NLU_REVIEW_DIR (by default data/nlu/review/, which `rasa train`
and `rasa data validate` read with the rest of data/), masked by `bot.crm.masking`, and marks them
exported with the file's name. The file is a change for a person to review and commit: the next
`make run` retrains on it. Held-out sets (tests/nlu/) are never written.

Exactly once: the export first takes the review state row (`claim_state`), so two admins pressing
the button at once make one file, not two with the same lines; the file is created exclusively
and removed again if the decisions cannot be marked. A message whose masked words are already an
example in the training data or an earlier export is marked exported without a new line, so even a
file written just before a crash is not repeated; so is one whose words are in a held-out set
(tests/nlu/), which must never become training data. Words are compared as tests/nlu compares
them: lower case, punctuation and spacing ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.masking import Known, known_from, mask
from bot.crm.models import ChannelIdentity, Conversation, Customer, Message, NluReview, Order, utcnow
from bot.crm.nlu_review import EXPORTED, claim_state
from bot.crm.queries import record_audit

ALREADY_KNOWN = None  # export_file of a message whose words were known already (training or held-out)
FILE_NAME = re.compile(r"review-(\d{4}-\d{2}-\d{2})-(\d+)\.yml")
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass
class ExportResult:
    file: str | None = None
    lines: int = 0
    already_known: int = 0
    intents: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.file is None and not self.already_known:
            return "Nothing new to export: every confirmed or corrected message is exported already."
        known = (
            f"; {self.already_known} not written, their words were known already"
            if self.already_known
            else ""
        )
        if self.file is None:
            return (
                f"No new file: the words of the {self.already_known} decided message(s) were known already."
            )
        return f"Wrote {self.lines} example(s) to {self.file}{known}."


def export(
    *,
    session: Session,
    directory: Path,
    known_data: Sequence[Path],
    entities: Iterable[str],
    actor: str,
    today: date | None = None,
) -> ExportResult:
    """Write the decided, unexported messages to a new file in `directory` and mark them exported;
    commits, so that the file and the marks stand or fall together. Examples already in an NLU file
    under `known_data` (data/, tests/nlu/) or `directory` are not written again."""
    claim_state(session)
    rows = session.execute(
        select(NluReview, Message)
        .join(Message, Message.id == NluReview.message_id)
        .where(NluReview.decision.in_(EXPORTED), NluReview.exported_at.is_(None), Message.text.is_not(None))
        .order_by(NluReview.id)
    ).all()
    result = ExportResult()
    if not rows:
        return result
    known_examples = existing_examples([*known_data, directory])
    examples: dict[str, list[str]] = {}
    placed: list[NluReview] = []
    for row, message in rows:
        line = mask(message.text or "", _known(session, message), entities)
        plain = _plain(line)
        if not plain or plain in known_examples:
            row.exported_at, row.export_file = utcnow(), ALREADY_KNOWN
            result.already_known += 1
            continue
        known_examples.add(plain)
        examples.setdefault(str(row.chosen_intent), []).append(line)
        placed.append(row)
    if placed:
        path = _write(directory, examples, actor, today or utcnow().date())
        result.file, result.lines = path.name, len(placed)
        result.intents = {intent: len(lines) for intent, lines in examples.items()}
        now = utcnow()
        for row in placed:
            row.exported_at, row.export_file = now, path.name
    record_audit(
        session=session,
        actor=actor,
        action="nlu_review_exported",
        entity="nlu_review",
        entity_id=None,
        details={"lines": result.lines, "already_known": result.already_known},
    )
    try:
        session.commit()
    except BaseException:
        if result.file:
            (directory / result.file).unlink(missing_ok=True)
        raise
    return result


def _known(session: Session, message: Message) -> Known:
    """What the CRM knows about the customer who wrote `message`."""
    customer = session.scalar(
        select(Customer)
        .join(Conversation, Conversation.customer_id == Customer.id)
        .where(Conversation.id == message.conversation_id)
    )
    if customer is None:
        return Known()
    orders = session.execute(
        select(Order.number, Order.tracking_code).where(Order.customer_id == customer.id)
    ).all()
    displays = session.scalars(
        select(ChannelIdentity.display_name).where(ChannelIdentity.customer_id == customer.id)
    )
    return known_from(
        first_names=[customer.first_name],
        last_names=[customer.last_name],
        display_names=list(displays),
        emails=[customer.email],
        phones=[customer.phone],
        order_numbers=[number for number, _ in orders],
        codes=[code for _, code in orders],
    )


def _write(directory: Path, examples: dict[str, list[str]], actor: str, today: date) -> Path:
    """Create the next `review-<date>-<n>.yml`, never overwriting one."""
    directory.mkdir(parents=True, exist_ok=True)
    text = render(examples, actor, today)
    taken = [
        int(m[2])
        for p in directory.glob(f"review-{today.isoformat()}-*.yml")
        if (m := FILE_NAME.fullmatch(p.name))
    ]
    number = max(taken, default=0) + 1
    while True:
        path = directory / f"review-{today.isoformat()}-{number}.yml"
        try:
            with path.open("x", encoding="utf-8") as out:
                out.write(text)
            return path
        except FileExistsError:
            number += 1


def render(examples: dict[str, list[str]], actor: str, today: date) -> str:
    """Rasa NLU YAML: one block of examples per intent."""
    lines = [
        "# Customer messages from live chats, their intents decided by admins in the console's NLU review;",
        f"# exported by {actor} on {today.isoformat()}. Personal data is masked (bot/crm/masking.py):",
        "# read every line before committing.",
        'version: "3.1"',
        "",
        "nlu:",
    ]
    for intent, texts in sorted(examples.items()):
        lines += [f"  - intent: {intent}", "    examples: |"]
        lines += [f"      - {text}" for text in texts]
    return "\n".join(lines) + "\n"


def existing_examples(roots: Iterable[Path]) -> set[str]:
    """Every intent example in the NLU files under `roots`, without annotations, lower case."""
    yaml = YAML(typ="safe")
    found: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.yml")) if root.exists() else []:
            try:
                content: Any = yaml.load(path.read_text(encoding="utf-8"))
            except Exception:  # noqa: BLE001, S112 - ruamel raises many kinds; a broken file is rasa's to report
                continue
            for item in (content or {}).get("nlu") or [] if isinstance(content, dict) else []:
                if isinstance(item, dict) and item.get("intent") and isinstance(item.get("examples"), str):
                    found |= {
                        _plain(line[2:]) for line in item["examples"].splitlines() if line.startswith("- ")
                    }
    return found


def _plain(example: str) -> str:
    """Lower-case words only, annotations dropped (tests/nlu/test_heldout.py's `normalise`)."""
    text = _ANNOTATION.sub(r"\1", example).lower()
    return " ".join(re.findall(r"\w+", text)) or text.strip()
