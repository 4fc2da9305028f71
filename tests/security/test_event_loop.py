"""Issue 15, item 5: no database call and no password hash runs on the gateway's event loop.

Every customer's websocket is served by the gateway's one event loop, so a console page that
queries the CRM or hashes a password there makes every customer wait. The check is mechanical,
not timed: SQLAlchemy (every statement, every connection taken from a pool) and Argon2 (every hash
and check) record the thread they run in, while the test drives every route of the console through
a real gateway (uvicorn, real CRM on SQLite and on PostgreSQL) together with a web customer. Nothing
may run on the server's event-loop thread, and everything must run on the gateway's CRM workers
(`bot.gateway.store.Crm`, threads named `crm…`): one way to run CRM work, not several.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from bot.crm import webhooks
from bot.crm.complaints import file_complaint
from bot.crm.feedback import file_feedback
from bot.crm.models import Agent, ApiKey, Campaign, CannedReply, ComplaintCategory, Customer, FeedbackSource
from bot.crm.models.enums import Segment
from bot.crm.models.knowledge import DriftEpisode
from bot.crm.models.review import NluReview
from bot.crm.models.webhook import WebhookDelivery, WebhookSubscription
from tests.console.conftest import ConsoleClient, hand_off
from tests.crm.rasa_tracker import a_misread_message
from tests.gateway.fixtures import rasa
from tests.gateway.harness import RunningGateway, close_sockets
from tests.gateway.standin_rasa import StandInRasa
from tests.security.console_stack import database_url, gateway_with_console, the_one

__all__ = ["database_url", "rasa"]

pytestmark = pytest.mark.timeout(180)

STATIC = "/static"  # files from disk (no CRM, no hashing): not driven


class ThreadWatch:
    """Where the gateway's database statements and password hashes ran, per console route."""

    def __init__(self, loop_thread: str) -> None:
        self.loop_thread = loop_thread
        self.route = "(start-up)"
        self.on_loop: dict[str, list[str]] = defaultdict(list)
        self.elsewhere: dict[str, set[str]] = defaultdict(set)  # route -> names of non-CRM threads
        self.driven: set[str] = set()

    @contextmanager
    def driving(self, method: str, template: str) -> Iterator[None]:
        self.route = f"{method} {template}"
        self.driven.add(self.route)
        try:
            yield
        finally:
            self.route = "(between routes)"

    def saw(self, what: str) -> None:
        thread = threading.current_thread()
        if thread is threading.main_thread():  # the test itself (setting up rows, reading results)
            return
        if thread.name == self.loop_thread:
            self.on_loop[self.route].append(what)
        elif not thread.name.startswith("crm"):
            self.elsewhere[self.route].add(re.sub(r"\d+", "N", thread.name))


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadWatch]:
    """Record the thread of every SQL statement, pool checkout and Argon2 call from now on."""
    box: dict[str, ThreadWatch] = {}

    def sql(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "watch" in box:
            box["watch"].saw(f"SQL {' '.join(statement.split())[:70]}")

    def checkout(*_: Any) -> None:
        if "watch" in box:
            box["watch"].saw("connection checkout")

    def hashing(name: str) -> Any:
        original = getattr(PasswordHasher, name)

        def recorded(self: PasswordHasher, *args: Any, **kwargs: Any) -> Any:
            if "watch" in box:
                box["watch"].saw(f"argon2 {name}")
            return original(self, *args, **kwargs)

        return recorded

    event.listen(Engine, "before_cursor_execute", sql)
    event.listen(Pool, "checkout", checkout)
    for name in ("hash", "verify"):
        monkeypatch.setattr(PasswordHasher, name, hashing(name))
    watch = ThreadWatch(loop_thread="")
    box["watch"] = watch
    try:
        yield watch
    finally:
        box.clear()
        event.remove(Engine, "before_cursor_execute", sql)
        event.remove(Pool, "checkout", checkout)


def console_routes(app: Starlette) -> set[str]:
    """Every console route as `METHOD /path` (websockets as `WS /path`), static files excepted."""
    (console,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/console"]
    found: set[str] = set()
    route: BaseRoute
    for route in console.routes:
        if isinstance(route, Route):
            found |= {f"{method} {route.path}" for method in route.methods or () if method != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            found.add(f"WS {route.path}")
        elif not (isinstance(route, Mount) and route.path == STATIC):
            found.add(f"? {route!r}")
    return found


def tomorrow() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()


def campaign_form(intent: str) -> dict[str, Any]:
    return {
        "intent": intent,
        "name": "Winter roast",
        "message": "Hi {first_name}, our winter roast is here!",
        "segments": ["MVC"],
        "date": tomorrow(),
        "time": "10:00",
        "every": "once",
        "button_1": "Tell me more",
    }


def drive(watch: ThreadWatch, method: str, template: str, client: ConsoleClient, path: str, **kw: Any) -> Any:
    """One request to a console route, expecting a non-error answer."""
    with watch.driving(method, template):
        if method == "GET":
            response = client.http.get(path)
        else:
            response = client.post(path, kw.pop("data", None), as_json=kw.pop("as_json", False))
    expected = kw.get("status", (200, 303))
    assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response


def login(watch: ThreadWatch, gateway: RunningGateway, username: str) -> ConsoleClient:
    client = ConsoleClient(gateway, username)
    with watch.driving("GET", "/login"):
        page = client.http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    with watch.driving("POST", "/login"):
        response = client.http.post(
            "/login", data={"username": username, "password": f"{username}-pw", "csrf_token": token.group(1)}
        )
    assert response.status_code == 303, response.text
    home = drive(watch, "GET", "/", client, "/")
    client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
    return client


def drive_admin(watch: ThreadWatch, gateway: RunningGateway, ada: ConsoleClient) -> None:
    """Users (with password hashing) and canned replies, refusals included."""
    drive(watch, "GET", "/users", ada, "/users")
    new_user = {"username": "zoe", "display_name": "Zoe", "role": "agent", "password": "a-long-password-1"}
    drive(watch, "POST", "/users", ada, "/users", data=new_user)
    drive(
        watch,
        "POST",
        "/users",
        ada,
        "/users",
        data={**new_user, "username": "yan", "password": "short"},
        status=(422,),
    )
    zoe = the_one(gateway, Agent, username="zoe").id
    drive(watch, "POST", "/users/{agent_id:int}/role", ada, f"/users/{zoe}/role", data={"role": "marketer"})
    drive(watch, "POST", "/users/{agent_id:int}/active", ada, f"/users/{zoe}/active", data={"active": "no"})
    no = {"active": "no", "confirmed": "yes"}  # the first post asked "Deactivate Zoe?"; this one acts
    drive(watch, "POST", "/users/{agent_id:int}/active", ada, f"/users/{zoe}/active", data=no)
    drive(watch, "POST", "/users/{agent_id:int}/active", ada, f"/users/{zoe}/active", data={"active": "yes"})
    drive(watch, "POST", "/users/{agent_id:int}/password", ada, f"/users/{zoe}/password", data={})  # asks
    reset = drive(
        watch,
        "POST",
        "/users/{agent_id:int}/password",
        ada,
        f"/users/{zoe}/password",
        data={"confirmed": "yes"},
    )
    drive(watch, "GET", "/users", ada, reset.headers["location"].removeprefix("/console"))
    drive(
        watch,
        "POST",
        "/users/{agent_id:int}/password",
        ada,
        f"/users/{zoe}/password",
        data={"password": "another-long-password-2", "confirmed": "yes"},
    )
    drive(watch, "POST", "/users/{agent_id:int}/sessions/end", ada, f"/users/{zoe}/sessions/end", data={})
    drive(watch, "GET", "/canned", ada, "/canned")
    drive(watch, "GET", "/outbox", ada, "/outbox")
    drive(watch, "POST", "/canned", ada, "/canned", data={"title": "Sorry", "text": "Sorry for the wait."})
    drive(watch, "POST", "/canned", ada, "/canned", data={"title": "Sorry", "text": "Again."}, status=(422,))
    reply = the_one(gateway, CannedReply, title="Sorry").id
    drive(watch, "GET", "/canned/{reply_id:int}/edit", ada, f"/canned/{reply}/edit")
    drive(
        watch,
        "POST",
        "/canned/{reply_id:int}/edit",
        ada,
        f"/canned/{reply}/edit",
        data={"title": "Sorry!", "text": "Sorry for the wait."},
    )
    drive(
        watch, "POST", "/canned/{reply_id:int}/active", ada, f"/canned/{reply}/active", data={"active": "no"}
    )


def drive_integrations(watch: ThreadWatch, gateway: RunningGateway, ada: ConsoleClient) -> None:
    """API keys: the page, a key made and shown once, a refused name, a revocation asked then done."""
    drive(watch, "GET", "/integrations", ada, "/integrations")
    key = {"name": "shop", "scope": "write"}
    made = drive(watch, "POST", "/integrations/keys", ada, "/integrations/keys", data=key)
    drive(watch, "GET", "/integrations", ada, made.headers["location"].removeprefix("/console"))
    empty = {"name": " ", "scope": "write"}
    drive(watch, "POST", "/integrations/keys", ada, "/integrations/keys", data=empty, status=(422,))
    revoke = f"/integrations/keys/{the_one(gateway, ApiKey, name='shop').id}/revoke"
    drive(watch, "POST", "/integrations/keys/{key_id:int}/revoke", ada, revoke, data={})  # asks first
    confirmed = {"confirmed": "yes"}
    drive(watch, "POST", "/integrations/keys/{key_id:int}/revoke", ada, revoke, data=confirmed)
    hook = {"url": "https://shop.example/careloop", "events": "survey.rated"}
    drive(watch, "POST", "/integrations/webhooks", ada, "/integrations/webhooks", data=hook)
    with gateway.crm() as crm, crm.begin():
        webhooks.emit(crm, "survey.rated", {"customer_id": None, "score": 5})
    resend = f"/integrations/webhook-deliveries/{the_one(gateway, WebhookDelivery).id}/resend"
    drive(watch, "POST", "/integrations/webhook-deliveries/{delivery_id:int}/resend", ada, resend, data={})
    disable = f"/integrations/webhooks/{the_one(gateway, WebhookSubscription).id}/disable"
    drive(watch, "POST", "/integrations/webhooks/{subscription_id:int}/disable", ada, disable, data=confirmed)


def drive_nlu_review(watch: ThreadWatch, gateway: RunningGateway, ada: ConsoleClient) -> None:
    """The NLU review: read from the tracker store, decide, review again, decide, export."""
    with gateway.crm() as crm:
        message_id = a_misread_message(crm, gateway.settings.rasa_tracker_db)
    drive(watch, "GET", "/nlu-review", ada, "/nlu-review")
    item = the_one(gateway, NluReview, message_id=message_id).id
    decision, reopen = f"/nlu-review/{item}/decision", f"/nlu-review/{item}/reopen"
    decide = "/nlu-review/{review_id:int}/decision"
    drive(watch, "POST", decide, ada, decision, data={"intent": "complain"})
    drive(watch, "POST", "/nlu-review/{review_id:int}/reopen", ada, reopen, data={})
    drive(watch, "POST", decide, ada, decision, data={"intent": "nope"}, status=(422,))
    drive(watch, "POST", decide, ada, decision, data={"intent": "complain"})
    drive(watch, "POST", "/nlu-review/export", ada, "/nlu-review/export", data={})
    drive(watch, "GET", "/nlu-review", ada, "/nlu-review?tab=reviewed")


def drive_marketing(watch: ThreadWatch, gateway: RunningGateway, mo: ConsoleClient) -> None:
    """Campaigns from preview to scheduled, and the reports."""
    drive(watch, "GET", "/campaigns", mo, "/campaigns")
    drive(watch, "GET", "/campaigns/new", mo, "/campaigns/new")
    drive(watch, "POST", "/campaigns/new", mo, "/campaigns/new", data=campaign_form("preview"))
    drive(watch, "POST", "/campaigns/new", mo, "/campaigns/new", data=campaign_form("draft"))
    campaign = the_one(gateway, Campaign, name="Winter roast").id
    drive(watch, "GET", "/campaigns/{campaign_id:int}", mo, f"/campaigns/{campaign}")
    progress = f"/campaigns/{campaign}/progress.json"
    drive(watch, "GET", "/campaigns/{campaign_id:int}/progress.json", mo, progress)
    drive(watch, "GET", "/campaigns/{campaign_id:int}/edit", mo, f"/campaigns/{campaign}/edit")
    edit = f"/campaigns/{campaign}/edit"
    drive(watch, "POST", "/campaigns/{campaign_id:int}/edit", mo, edit, data=campaign_form("preview"))
    drive(watch, "POST", "/campaigns/{campaign_id:int}/edit", mo, edit, data=campaign_form("draft"))
    status = f"/campaigns/{campaign}/status"
    drive(watch, "POST", "/campaigns/{campaign_id:int}/status", mo, status, data={"action": "schedule"})
    scheduling = {"action": "schedule", "confirmed": "yes"}  # the first post asked; this one acts
    drive(watch, "POST", "/campaigns/{campaign_id:int}/status", mo, status, data=scheduling)
    drive(
        watch,
        "POST",
        "/campaigns/{campaign_id:int}/status",
        mo,
        status,
        data={"action": "schedule"},
        status=(409,),
    )
    drive(watch, "GET", "/reports", mo, "/reports?days=30")
    drive(watch, "GET", "/reports", mo, "/reports?days=13", status=(400,))
    drive(watch, "GET", "/reports.csv", mo, "/reports.csv?days=30")
    drive(watch, "GET", "/loyalty", mo, "/loyalty?months=6")
    drive(watch, "GET", "/loyalty/{chart}.csv", mo, "/loyalty/churn.csv?months=6")


async def drive_desk(
    watch: ThreadWatch, gateway: RunningGateway, rasa: StandInRasa, alex: ConsoleClient, sam: ConsoleClient
) -> None:
    """The queue, a chat from claim to transfer and hand back, another to close, and the live socket."""
    drive(watch, "GET", "/queue", alex, "/queue")
    first = await hand_off(gateway, rasa)
    drive(watch, "GET", "/queue.json", alex, "/queue.json")
    chat = f"/chats/{first.handoff_id}"
    drive(
        watch,
        "POST",
        "/chats/{handoff_id:int}/notes",
        alex,
        f"{chat}/notes",
        data={"text": "x"},
        status=(200, 303, 403),
    )
    drive(watch, "POST", "/handoffs/{handoff_id:int}/claim", alex, f"/handoffs/{first.handoff_id}/claim")
    drive(watch, "GET", "/chats/{handoff_id:int}", alex, chat)
    drive(watch, "GET", "/chats/{handoff_id:int}/state.json", alex, f"{chat}/state.json")
    drive(
        watch, "POST", "/chats/{handoff_id:int}/messages", alex, f"{chat}/messages", data={"text": "Hello!"}
    )
    drive(
        watch,
        "POST",
        "/chats/{handoff_id:int}/messages",
        alex,
        f"{chat}/messages",
        data={"text": " "},
        status=(400,),
    )
    drive(watch, "POST", "/chats/{handoff_id:int}/notes", alex, f"{chat}/notes", data={"text": "Late parcel"})
    await console_socket(watch, alex, first.handoff_id)
    drive(watch, "GET", "/queue", sam, "/queue")  # sam is present: a transfer target
    sam_id = the_one(gateway, Agent, username="sam").id
    drive(
        watch,
        "POST",
        "/chats/{handoff_id:int}/transfer",
        alex,
        f"{chat}/transfer",
        data={"agent_id": str(sam_id)},
    )
    drive(watch, "POST", "/chats/{handoff_id:int}/handback", sam, f"{chat}/handback")
    second = await hand_off(gateway, rasa)
    drive(watch, "POST", "/handoffs/{handoff_id:int}/claim", alex, f"/handoffs/{second.handoff_id}/claim")
    drive(
        watch,
        "POST",
        "/handoffs/{handoff_id:int}/claim",
        sam,
        f"/handoffs/{second.handoff_id}/claim",
        status=(409,),
    )
    drive(
        watch,
        "POST",
        "/chats/{handoff_id:int}/close",
        alex,
        f"/chats/{second.handoff_id}/close",
        data={"resolution": "Refund sent", "confirmed": "yes"},
    )


def drive_cases(watch: ThreadWatch, gateway: RunningGateway, ada: ConsoleClient, alex: ConsoleClient) -> None:
    """The case desk: teams on the Users page, the Cases list, a case from a note to resolved."""
    alex_id = the_one(gateway, Agent, username="alex").id
    teams = f"/users/{alex_id}/teams"
    drive(watch, "POST", "/users/{agent_id:int}/teams", ada, teams, data={"team": "logistics"})
    with gateway.crm() as crm:
        customer = Customer(first_name="Casey")
        crm.add(customer)
        crm.flush()
        filed = file_complaint(
            session=crm,
            customer=customer,
            category=ComplaintCategory.DELIVERY,
            description="Late",
            order=None,
            angry=False,
        )
        episode = DriftEpisode(
            key=f"drift:customer:{customer.id}:since:2026-11-01",
            customer_id=customer.id,
            segment=Segment.MVC,
            reason="lapsed",
            last_active_at=datetime.now(timezone.utc) - timedelta(days=65),
            action="task",
        )
        crm.add(episode)
        crm.commit()
        page = f"/cases/{filed.complaint.id}"
        drift_done = f"/cases/drift/{episode.id}/done"
    drive(watch, "GET", "/cases", alex, "/cases?state=open&clock=at_risk")
    drive(watch, "GET", "/cases.json", alex, "/cases.json")
    drive(watch, "GET", "/cases/{case_id:int}", alex, page)
    drive(watch, "POST", "/cases/{case_id:int}/notes", alex, f"{page}/notes", data={"text": "<b>hm</b>"})
    drive(watch, "POST", "/cases/{case_id:int}/take", alex, f"{page}/take", data={})
    drive(watch, "POST", "/cases/{case_id:int}/state", alex, f"{page}/state", data={"state": "open"})
    assign = {"owner_id": str(alex_id), "team": "logistics"}
    drive(watch, "POST", "/cases/{case_id:int}/assign", alex, f"{page}/assign", data=assign)
    drive(watch, "POST", "/cases/{case_id:int}/ask", alex, f"{page}/ask", data={"question": "When?"})
    empty = {"resolution": " ", "remedy": "none"}
    drive(watch, "POST", "/cases/{case_id:int}/resolve", alex, f"{page}/resolve", data=empty, status=(400,))
    resolved = {"resolution": "Sorted", "remedy": "none"}
    drive(watch, "POST", "/cases/{case_id:int}/resolve", alex, f"{page}/resolve", data=resolved)
    # a drifting customer's task, called and marked done (admins see the care team's tasks)
    drive(watch, "POST", "/cases/drift/{episode_id:int}/done", ada, drift_done, data={"note": "Called"})
    # the SLA clock's notices: the page, the header's count, marking them read
    drive(watch, "GET", "/notices", alex, "/notices")
    drive(watch, "GET", "/notices.json", alex, "/notices.json")
    drive(watch, "POST", "/notices/read", alex, "/notices/read", data={})


def drive_feedback(watch: ThreadWatch, gateway: RunningGateway, alex: ConsoleClient) -> None:
    """The Feedback page: the list, an item from taking it to telling the customer what changed."""
    with gateway.crm() as crm:
        customer = Customer(first_name="Fay")
        crm.add(customer)
        crm.flush()
        item = file_feedback(
            session=crm, customer_id=customer.id, source=FeedbackSource.FEEDBACK, text="The app is slow"
        )
        assert item is not None
        page = f"/feedback/{item.id}"
        crm.commit()
    alex_id = the_one(gateway, Agent, username="alex").id
    drive(watch, "GET", "/feedback", alex, "/feedback?theme=technical&owner=nobody")
    drive(watch, "GET", "/feedback/{item_id:int}", alex, page)
    drive(watch, "POST", "/feedback/{item_id:int}/take", alex, f"{page}/take", data={})
    assign = {"owner_id": str(alex_id)}
    drive(watch, "POST", "/feedback/{item_id:int}/assign", alex, f"{page}/assign", data=assign)
    state = {"state": "in_progress"}
    drive(watch, "POST", "/feedback/{item_id:int}/state", alex, f"{page}/state", data=state)
    empty = {"message": " "}
    drive(watch, "POST", "/feedback/{item_id:int}/tell", alex, f"{page}/tell", data=empty, status=(400,))
    told = {"message": "We made the app faster."}
    drive(watch, "POST", "/feedback/{item_id:int}/tell", alex, f"{page}/tell", data=told)


async def console_socket(watch: ThreadWatch, alex: ConsoleClient, handoff_id: int) -> None:
    with watch.driving("WS", "/ws"):
        socket = await alex.socket()
        frames = [json.loads(await socket.recv()) for _ in range(2)]  # ready, then the first heartbeat
        assert {f["type"] for f in frames} == {"ready", "ping"}, frames
        await socket.send(json.dumps({"type": "watch", "handoff": handoff_id}))
        await socket.send(json.dumps({"type": "typing", "handoff": handoff_id, "on": True}))
        await socket.close()


async def test_console_work_never_runs_on_the_event_loop(
    tmp_path: Path, database_url: str, rasa: StandInRasa, watch: ThreadWatch
) -> None:
    with gateway_with_console(tmp_path, database_url, rasa) as (gateway, app):
        watch.loop_thread = f"server-{gateway.server.port}"
        clients = [login(watch, gateway, name) for name in ("ada", "mo", "alex", "sam")]
        ada, mo, alex, sam = clients
        try:
            drive_admin(watch, gateway, ada)
            drive_integrations(watch, gateway, ada)
            drive_nlu_review(watch, gateway, ada)
            drive_marketing(watch, gateway, mo)
            await drive_desk(watch, gateway, rasa, alex, sam)
            drive_cases(watch, gateway, ada, alex)
            drive_feedback(watch, gateway, alex)
            drive(watch, "POST", "/logout", ada, "/logout", data={})
        finally:
            await close_sockets(gateway)
            for client in clients:
                client.close()
        routes = console_routes(app)

    assert routes - watch.driven == set(), "console routes this test does not drive yet"
    assert not watch.on_loop, "database work or password hashing on the event loop:\n" + listing(
        watch.on_loop
    )
    assert not watch.elsewhere, "CRM work outside the gateway's CRM workers:\n" + listing(watch.elsewhere)


def listing(found: dict[str, Any]) -> str:
    return "\n".join(f"  {route}: {sorted(set(what))[:3]}" for route, what in sorted(found.items()))
