"""Regenerate the README's screenshots (docs/screenshots/*.png) from the demo data.

    .venvs/app/bin/python tools/screenshots.py [--out docs/screenshots]

Builds a throwaway SQLite CRM with the demo data, serves the real gateway (and its console) on a
free local port, and photographs the pages with headless Chromium: the agents' queue, a complaint
case, the campaign form with its mistakes, and Reports (top and complaint cases). Rasa is not
needed for these pages and is not started. Not run by the tests (it takes about a minute).
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 860}
LIMIT = 200_000  # bytes: a README image stays small


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(var_dir: Path):  # type: ignore[no-untyped-def]
    """Settings for a gateway on a fresh SQLite CRM under `var_dir`, with throwaway secrets."""
    from bot.settings import Settings

    return Settings.from_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'crm.db'}",
            "RASA_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: these pages need no Rasa
            "RASA_TOKEN": secrets.token_urlsafe(32),
            "RASA_CHANNEL_SECRET": secrets.token_urlsafe(32),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "INTERNAL_API_TOKEN": secrets.token_urlsafe(32),
            "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
            "NLU_REVIEW_DIR": str(var_dir / "nlu-review"),
        }
    )


def load_demo(database_url: str) -> None:
    from sqlalchemy.orm import Session

    from bot.crm.db import make_engine
    from bot.crm.demo import demo_day, load_demo_data
    from bot.crm.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        load_demo_data(session=session, today=demo_day(datetime.now(timezone.utc)))
        session.commit()
    engine.dispose()


@contextmanager
def serving(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The gateway with its console, served until the block ends; yields its base URL."""
    import uvicorn

    from bot.gateway.__main__ import server_config
    from bot.gateway.app import create_app

    server = uvicorn.Server(
        server_config(create_app(settings), host="127.0.0.1", port=settings.gateway_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.gateway_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def photograph(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import Page, sync_playwright

    def log_in(page: Page, username: str) -> None:
        page.goto(f"{base}/console/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(f"{username}-demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/console/")

    def shot(page: Page, name: str) -> Path:
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    taken = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        agent = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(agent, "agent")
        agent.goto(f"{base}/console/queue")
        taken.append(shot(agent, "queue"))
        agent.locator("main a[href*='/chats/']").first.click()
        agent.wait_for_load_state()
        taken.append(shot(agent, "chat"))
        agent.goto(f"{base}/console/queue")
        agent.goto(f"{base}/console/cases")
        agent.locator("main a[href*='/cases/']").first.click()
        agent.wait_for_load_state()
        taken.append(shot(agent, "case"))

        marketer = chromium.new_context(viewport=VIEWPORT).new_page()
        log_in(marketer, "marketer")
        marketer.goto(f"{base}/console/campaigns/new")
        marketer.get_by_label("Name (only marketers see it)").fill("Spring roast")
        marketer.get_by_label("Churn risk at least (0–1)").fill("2")
        marketer.get_by_role("button", name="Schedule").click()
        marketer.locator("#form-errors").wait_for()
        taken.append(shot(marketer, "campaign-form"))
        marketer.goto(f"{base}/console/reports")
        taken.append(shot(marketer, "reports"))
        marketer.goto(f"{base}/console/reports#cases")
        taken.append(shot(marketer, "reports-cases"))
        chromium.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="careloop-shots-") as tmp:
        settings = demo_settings(Path(tmp))
        load_demo(settings.database_url)
        with serving(settings) as base:
            taken = photograph(base, args.out)
    for path in taken:
        size = path.stat().st_size
        print(
            f"{path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}: {size:,} bytes"
        )
        if size > LIMIT:
            sys.exit(f"{path.name} is over {LIMIT:,} bytes: make the viewport smaller")


if __name__ == "__main__":
    main()
