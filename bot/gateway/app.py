"""The gateway's ASGI application: `create_app(settings)` wires the channels, the inbox and Rasa."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.api.routes import InboundApi
from bot.console.app import Console, create_console_app
from bot.console.desk import desk_routes
from bot.crm.models import Channel
from bot.gateway.background import Background
from bot.gateway.breaker import Breaker
from bot.gateway.conversations import LocalConversations
from bot.gateway.delivery import Delivery
from bot.gateway.desk import ConsoleHub, Desk
from bot.gateway.email_outlet import EmailOutlet, MailboxTransport, MailTransport, SmtpTransport
from bot.gateway.hangups import HangUpGuard
from bot.gateway.inbox import BotAnswers, Inbox
from bot.gateway.mailer import Mailer
from bot.gateway.outlets import Outlet
from bot.gateway.pages import DemoShop
from bot.gateway.proactive import InternalApi
from bot.gateway.rasa_client import RasaClient
from bot.gateway.reception import Reception
from bot.gateway.store import Crm
from bot.gateway.telegram import TelegramChannel
from bot.gateway.telegram_outlet import TelegramConnection, TelegramOutlet
from bot.gateway.tracker_copy import TrackerCopy
from bot.gateway.verify_email import EmailVerificationPages
from bot.gateway.web import WebChat, WebOutlet
from bot.ops.status import supervised_services
from bot.settings import Settings
from scheduler.policy import Policy

log = logging.getLogger(__name__)

# The console's own CRM workers: staff pages never queue behind customers' messages (nor these
# behind them), and at most this many Argon2 hashes (64 MiB each) run at once.
CONSOLE_WORKERS = 4


@dataclass
class Gateway:
    """Everything one gateway process holds; `app.state.gateway` in the ASGI app."""

    settings: Settings
    crm: Crm
    rasa: RasaClient
    inbox: Inbox
    reception: Reception
    web: WebChat
    internal: InternalApi
    telegram: TelegramChannel | None
    desk: Desk
    console: Console
    mailer: Mailer
    verify_email: EmailVerificationPages
    api: InboundApi
    shop: DemoShop
    background: Background

    def telegram_state(self) -> str:
        return self.telegram.state if self.telegram else "off"


def _bot_username(telegram: TelegramChannel | None) -> str | None:
    """The bot's @name once Telegram is connected (for t.me deep links)."""
    application = telegram.application if telegram else None
    if telegram is None or application is None or telegram.state != "running":
        return None
    return application.bot.username


def mail_transport(settings: Settings) -> MailTransport:
    """SMTP when SMTP_HOST is set; otherwise the local mailbox folder, so nothing leaves the machine."""
    if settings.smtp_host is None:
        return MailboxTransport(settings.mail_dir)
    return SmtpTransport(
        settings.smtp_host,
        settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        security=settings.smtp_security,
    )


def build_mailer(settings: Settings, crm: Crm) -> Mailer:
    transport = mail_transport(settings)
    return Mailer(
        crm=crm,
        outlet=EmailOutlet(transport, settings.mail_from),
        transport_name=transport.name,
        policy=Policy.parse(settings.outreach_quiet_hours, settings.outreach_weekly_cap),
        secret_key=settings.secret_key,
        public_url=settings.public_url,
    )


def build_gateway(settings: Settings) -> Gateway:
    """Create the gateway's parts (no I/O: connections open in the app's lifespan)."""
    crm = Crm(settings.database_url)
    rasa = RasaClient(
        settings.rasa_url,
        settings.rasa_token,
        settings.gateway_rasa_timeout,
        channel_secret=settings.rasa_channel_secret,
        patience=settings.gateway_rasa_patience,
    )
    web_outlet = WebOutlet()
    outlets: dict[Channel, Outlet] = {Channel.WEB: web_outlet}
    telegram_connection = TelegramConnection()  # the channel connects it, the outlet sends through it
    telegram_outlet = TelegramOutlet(telegram_connection) if settings.telegram_bot_token else None
    if telegram_outlet is not None:
        outlets[Channel.TELEGRAM] = telegram_outlet
    conversations = LocalConversations()  # one gateway process: see bot/gateway/conversations.py
    background = Background()
    hub = ConsoleHub(background)  # the agents watching conversations live
    delivery = Delivery(
        crm=crm,
        outlets=outlets,
        conversations=conversations,
        watchers=hub,
        retry_seconds=settings.gateway_retry_seconds,
    )
    breaker = Breaker(settings.gateway_retry_seconds)  # one for every customer's turn in Rasa
    answers = BotAnswers(crm=crm, rasa=rasa, breaker=breaker, delivery=delivery)
    # The inbox routes handed-off conversations to the desk; the desk's hand-back asks the bot's
    # answers directly, not the inbox: so the desk is built first and nothing is wired afterwards.
    desk = Desk(
        crm=crm,
        rasa=rasa,
        answers=answers,
        delivery=delivery,
        tracker=TrackerCopy(crm=crm, rasa=rasa, breaker=breaker, conversations=conversations),
        conversations=conversations,
        hub=hub,
        away_seconds=settings.console_agent_away_seconds,
        max_chars=settings.gateway_max_message_chars,
        hours=settings.opening_hours(),
        unattended_seconds=settings.handoff_unattended_seconds,
        follow_up=timedelta(minutes=settings.handoff_follow_up_minutes),
    )
    inbox = Inbox(
        crm=crm,
        answers=answers,
        desk=desk,
        delivery=delivery,
        conversations=conversations,
        background=background,
        watchers=hub,
        retry_seconds=settings.gateway_retry_seconds,
    )
    reception = Reception(
        inbox,
        crm=crm,
        max_chars=settings.gateway_max_message_chars,
        per_minute=settings.gateway_rate_limit_per_minute,
    )
    web = WebChat(
        secret_key=settings.secret_key,
        crm=crm,
        inbox=inbox,
        delivery=delivery,
        watchers=hub,
        reception=reception,
        outlet=web_outlet,
        allowed_origins=settings.webchat_allowed_origins,
        identity_secret=settings.widget_identity_secret,
    )
    telegram = None
    if telegram_outlet is not None:
        telegram = TelegramChannel(
            settings,
            inbox=inbox,
            crm=crm,
            reception=reception,
            outlet=telegram_outlet,
            connection=telegram_connection,
        )
    internal = InternalApi(
        token=settings.internal_api_token,
        secret_key=settings.secret_key,
        crm=crm,
        rasa=rasa,
        delivery=delivery,
        conversations=conversations,
        weekly_cap=settings.outreach_weekly_cap,
        telegram_username=lambda: _bot_username(telegram),
    )
    console = Console(settings, Crm(settings.database_url, workers=CONSOLE_WORKERS, name="crm-console"))
    mailer = build_mailer(settings, crm)
    verify_email = EmailVerificationPages(crm)
    api = InboundApi(Crm(settings.database_url, name="crm-api"))  # the shop's writes queue behind no chat
    return Gateway(
        settings,
        crm,
        rasa,
        inbox,
        reception,
        web,
        internal,
        telegram,
        desk,
        console,
        mailer,
        verify_email,
        api,
        shop=DemoShop(
            crm,
            identity_secret=settings.widget_identity_secret,
            logins=settings.demo_data and settings.environment != "production",
        ),
        background=background,
    )


def create_app(settings: Settings) -> Starlette:
    """The gateway as an ASGI app."""
    gateway = build_gateway(settings)

    async def health(request: Request) -> Response:
        """The gateway answers (Rasa's state is not its health: it copes without Rasa); with what
        the supervisor sees of every service, when one runs it."""
        services = await run_in_threadpool(supervised_services, gateway.settings.var_dir)
        body: dict[str, object] = {"status": "ok", "telegram": gateway.telegram_state()}
        if services:
            body["services"] = services
        return JSONResponse(body)

    async def telegram_webhook(request: Request) -> Response:
        if gateway.telegram is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return await gateway.telegram.webhook(request)

    routes = [
        Route("/", gateway.shop.page, methods=["GET"]),
        Route("/demo", gateway.shop.page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/internal/proactive", gateway.internal.proactive, methods=["POST"]),
        Route("/internal/telegram-link", gateway.internal.telegram_link, methods=["POST"]),
        Route("/telegram/webhook", telegram_webhook, methods=["POST"]),
        Route("/verify-email", gateway.verify_email.show, methods=["GET"]),
        Route("/verify-email", gateway.verify_email.confirm, methods=["POST"]),
        Mount("/webchat", app=gateway.web.app()),
        Mount("/api/v1", app=gateway.api.app()),
        Mount(
            "/console",
            app=create_console_app(gateway.console, extra_routes=desk_routes(gateway.desk, gateway.console)),
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(HangUpGuard)],  # a client hanging up early is not an error
        lifespan=lambda app: _lifespan(gateway),
    )
    app.state.gateway = gateway
    return app


@asynccontextmanager
async def _lifespan(gateway: Gateway) -> AsyncIterator[None]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request URLs carry the Telegram token
    gateway.crm.start()
    gateway.console.crm.start()
    gateway.api.crm.start()
    await gateway.rasa.open()
    background = [
        asyncio.create_task(gateway.inbox.run_forever(), name="inbox"),
        asyncio.create_task(gateway.desk.run_forever(), name="desk"),
        asyncio.create_task(gateway.mailer.run_forever(), name="outbox"),
    ]
    if gateway.telegram is not None:
        background.append(asyncio.create_task(gateway.telegram.run(), name="telegram"))
    log.info("gateway started telegram=%s", gateway.telegram.mode if gateway.telegram else "off")
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if gateway.telegram is not None:
            with contextlib.suppress(Exception):  # shutting down: a half-started bot must not block it
                await gateway.telegram.stop()
        await gateway.background.drain()
        await gateway.rasa.close()
        gateway.crm.close()
        gateway.console.crm.close()
        gateway.api.crm.close()
        log.info("gateway stopped")
