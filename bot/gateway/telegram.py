"""The Telegram channel: a python-telegram-bot Application inside the gateway process.

Long polling by default (works on a laptop without a public URL); webhook mode when
TELEGRAM_WEBHOOK_URL is set, with Telegram's secret-token header checked on every update."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from functools import partial
from typing import Any, TypeAlias

from sqlalchemy.exc import NoResultFound, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import Message as TelegramMessage
from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    JobQueue,
    MessageHandler,
    filters,
)

from bot.crm import transcript
from bot.crm.transcript import Profile
from bot.gateway import tokens, wording
from bot.gateway.inbox import Inbox
from bot.gateway.reception import Receipt, Reception
from bot.gateway.store import Crm
from bot.gateway.telegram_outlet import TelegramConnection, TelegramOutlet
from bot.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
BUTTON = re.compile(r"^b:(\d{1,15}):(\d{1,3})$")
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_UPDATE_BYTES = 1_000_000
RETRY_START_SECONDS = (1, 2, 5, 10, 30, 60)
# The Application python-telegram-bot's builder makes with its default context types.
TelegramApp: TypeAlias = Application[
    ExtBot[None],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]


class TelegramChannel:
    def __init__(
        self,
        settings: Settings,
        *,
        inbox: Inbox,
        crm: Crm,
        reception: Reception,
        outlet: TelegramOutlet,
        connection: TelegramConnection,
        poll_timeout: int = 10,  # getUpdates waits whole seconds
    ) -> None:
        assert settings.telegram_bot_token, "TelegramChannel needs TELEGRAM_BOT_TOKEN"
        self.settings, self.inbox, self.crm = settings, inbox, crm
        self.reception, self.outlet, self.connection = reception, outlet, connection
        self.mode = "webhook" if settings.telegram_webhook_url else "polling"
        self.poll_timeout = poll_timeout
        self.state = "off"  # off | starting | running | failed
        self.application: TelegramApp | None = None

    def build(self) -> TelegramApp:
        """The Application with every handler registered."""
        base = self.settings.telegram_api_base_url
        builder = (
            Application.builder()
            .token(self.settings.telegram_bot_token or "")
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .concurrent_updates(True)  # one slow conversation must not hold up the others
        )
        if self.mode == "webhook":
            builder = builder.updater(None)
        application = builder.build()
        private = filters.ChatType.PRIVATE
        application.add_handler(CommandHandler("start", self.on_start, filters=private))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(MessageHandler(private & filters.TEXT, self.on_text))
        application.add_handler(MessageHandler(private & ~filters.TEXT, self.on_unsupported))
        application.add_error_handler(self.on_error)
        return application

    async def run(self) -> None:
        """Connect to Telegram, retrying while it is unreachable; give up on a rejected token."""
        self.state = "starting"
        for wait in (*RETRY_START_SECONDS, *([RETRY_START_SECONDS[-1]] * 10_000)):
            try:
                await self._start()
            except InvalidToken:
                self.state = "failed"
                log.error("Telegram rejected TELEGRAM_BOT_TOKEN: the Telegram channel is off")
                await self._discard()
                return
            except NetworkError as error:
                log.warning("Telegram unreachable (%s): retrying in %s s", type(error).__name__, wait)
                await self._discard()
                await asyncio.sleep(wait)
                continue
            self.state = "running"
            return

    async def _start(self) -> None:
        application = self.build()
        self.application = application
        await application.initialize()  # getMe: checks the token
        if self.mode == "webhook":
            await application.bot.set_webhook(
                url=self.settings.telegram_webhook_url or "",
                secret_token=self.settings.telegram_webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        await application.start()
        if application.updater is not None:
            await application.updater.start_polling(
                timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
            )
        self.connection.connect(application.bot)
        log.info("Telegram connected as @%s mode=%s", application.bot.username, self.mode)

    async def _discard(self) -> None:
        if self.application is not None:
            try:
                await self.application.shutdown()
            except (TelegramError, RuntimeError):
                log.debug("Telegram application was not fully initialised")
            self.application = None

    async def stop(self) -> None:
        """Stop polling and the Application (a webhook stays set, so Telegram keeps the updates)."""
        application, self.application = self.application, None
        self.connection.disconnect()
        if application is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        self.state = "off"

    async def webhook(self, request: Request) -> Response:
        """POST /telegram/webhook: an update from Telegram, proven by the secret-token header."""
        if self.mode != "webhook":
            return JSONResponse({"error": "not_found"}, status_code=404)
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, (self.settings.telegram_webhook_secret or "").encode()):
            log.warning("telegram webhook: wrong secret token, update refused")
            return JSONResponse({"error": "forbidden"}, status_code=403)
        application = self.application
        if application is None or not application.running:
            return JSONResponse({"error": "starting"}, status_code=503)  # Telegram retries later
        update = _parse_update(await request.body(), application)
        if update is None:
            return JSONResponse({"error": "invalid_update"}, status_code=400)
        await application.update_queue.put(update)
        return Response(status_code=200)

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Greet a new chat; with a `link-…` deep-link payload, link it to a CRM customer first."""
        message, sender_id, profile = _origin(update)
        if context.args and context.args[0].startswith(tokens.LINK_PREFIX):
            linked = await self._link(sender_id, context.args[0], profile)
            await self.outlet.notify(sender_id, "link", wording.LINKED if linked else wording.LINK_INVALID)
        receipt = await self.reception.command(
            sender_id, "/start", "/greet", external_id=str(message.message_id), profile=profile
        )
        await self._follow_up(sender_id, receipt)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A typed message (other commands count as text)."""
        message, sender_id, profile = _origin(update)
        receipt = await self.reception.text(
            sender_id, message.text or "", external_id=str(message.message_id), profile=profile
        )
        await self._follow_up(sender_id, receipt)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A click on an inline keyboard button: acknowledge it, then it is the customer's answer."""
        query = update.callback_query
        assert query is not None
        await query.answer()
        match = BUTTON.match(query.data or "")
        chat = update.effective_chat
        if match is None or chat is None or chat.type != "private":
            return
        sender_id = f"telegram:{chat.id}"
        receipt = await self.reception.button(
            sender_id,
            int(match[1]),
            int(match[2]),
            external_id=f"cb:{query.id}"[:64],
            profile=_profile(update),
        )
        await self._follow_up(sender_id, receipt)

    async def on_unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Photos, stickers, voice: say politely that only text is understood."""
        _, sender_id, _ = _origin(update)
        await self.outlet.notify(sender_id, "unsupported", wording.UNSUPPORTED)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a failed update by its id, without its content."""
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update %s failed", update_id, exc_info=context.error)

    async def _follow_up(self, sender_id: str, receipt: Receipt) -> None:
        if receipt.refusal is not None:
            if not receipt.quiet:
                await self.outlet.notify(sender_id, receipt.refusal.code, receipt.refusal.text)
            return
        assert receipt.accepted is not None
        await self.inbox.process(receipt.accepted.conversation_id, live=True)

    async def _link(self, sender_id: str, payload: str, profile: Profile) -> bool:
        customer_id = tokens.customer_of_link(self.settings.secret_key, payload)
        if customer_id is None:
            log.info("telegram link refused sender=%s: invalid or expired", sender_id)
            return False
        try:
            await self.crm.run(partial(_link, sender_id=sender_id, customer_id=customer_id, profile=profile))
        except NoResultFound:
            return False
        except SQLAlchemyError:
            log.exception("CRM unavailable: telegram link failed sender=%s", sender_id)
            return False
        log.info("telegram chat linked sender=%s customer=%s", sender_id, customer_id)
        return True


def _parse_update(body: bytes, application: TelegramApp) -> Update | None:
    if len(body) > MAX_UPDATE_BYTES:
        return None
    try:
        data = json.loads(body)
        return Update.de_json(data, application.bot) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def _link(session: Session, *, sender_id: str, customer_id: int, profile: Profile) -> None:
    transcript.link_identity(session=session, sender_id=sender_id, customer_id=customer_id, profile=profile)


def _profile(update: Update) -> Profile:
    user = update.effective_user
    if user is None:
        return Profile()
    return Profile(user.first_name, user.last_name, user.language_code)


def _origin(update: Update) -> tuple[TelegramMessage, str, Profile]:
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    return message, f"telegram:{chat.id}", _profile(update)
