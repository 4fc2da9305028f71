"""Parts receive what they use (docs/architecture.md, "The gateway's parts, and how they are wired"):
the composition root passes every dependency in as a constructor argument. Read from the source.

Two shortcuts fail here: a part reaching through the inbox for a service the inbox holds
(`self.inbox.crm.run(...)`), and wiring by setting an attribute on another object after it was
built (`inbox.desk = self`, `self.outlet.bot = application.bot`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGES = ("bot/gateway", "bot/console", "bot/api")
THROUGH_THE_INBOX = re.compile(
    r"\binbox\.(crm|rasa|breaker|outlets|desk|delivery|answers|conversations|background|watchers|locks)\b"
)


def reaching_through(source: str) -> list[str]:
    return [match.group(0) for match in THROUGH_THE_INBOX.finditer(source)]


def late_wiring(source: str) -> list[str]:
    """Assignments to an attribute of another part (`self.x.y = …`), or of anything, of `self`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr]
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                if not isinstance(element, ast.Attribute):
                    continue
                owner = element.value
                others = isinstance(owner, ast.Attribute) and ast.unparse(owner).startswith("self.")
                handing_self = isinstance(value, ast.Name) and value.id == "self"
                if others or handing_self:
                    found.append(ast.unparse(element))
    return found


def sources(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }


def test_no_part_reaches_through_the_inbox(project_root: Path) -> None:
    found = {
        f"{name}: {hit}"
        for name, source in sources(project_root).items()
        if name != "bot/gateway/inbox.py"
        for hit in reaching_through(source)
    }
    assert not found, "pass the service in from bot/gateway/app.py instead:\n" + "\n".join(sorted(found))


def test_no_part_is_wired_after_it_was_built(project_root: Path) -> None:
    found = {
        f"{name}: {hit}" for name, source in sources(project_root).items() for hit in late_wiring(source)
    }
    assert not found, "give it as a constructor argument instead:\n" + "\n".join(sorted(found))


def test_the_shortcuts_are_recognised() -> None:
    old = (
        "class Desk:\n    def __init__(self, inbox):\n        inbox.desk = self\n"
        "    async def go(self):\n        await self.inbox.crm.run(f)\n"
        "        application, self.application, self.outlet.bot = self.application, None, None\n"
        "        self.outlet.bot = application.bot\n"
        "        self.state, message.text = 'on', 'fine: a row and our own attribute'\n"
    )
    assert reaching_through(old) == ["inbox.desk", "inbox.crm"]
    assert late_wiring(old) == ["inbox.desk", "self.outlet.bot", "self.outlet.bot"]
