"""Delivering the bot's messages to Telegram: plain text split at Telegram's limit, buttons as an
inline keyboard, flood control honoured, and a chat that blocked the bot marked unreachable.
Anything else `deliver` raises (e.g. an answer python-telegram-bot cannot parse) is caught where
delivery calls every outlet, recorded on the message and retried (bot/gateway/delivery.py)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram import Message as TelegramMessage
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.crm.models import OutboundStatus
from bot.gateway import wording
from bot.gateway.outlets import DeliveryResult, Outbound

log = logging.getLogger(__name__)

TEXT_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096, counted in UTF-16 code units
BUTTON_DATA = "b:{message_id}:{index}"  # callback data; the payload itself stays in the CRM


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split `text` into parts Telegram accepts, preferring line breaks, then spaces."""
    parts = []
    while _units(text) > limit:
        fit = _fitting(text, limit)
        window = text[:fit]
        cut = window.rfind("\n")
        if cut < fit // 2:
            cut = window.rfind(" ")
        if cut < fit // 2:
            cut = fit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return [part for part in parts if part]


def _units(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _fitting(text: str, limit: int) -> int:
    """How many characters of `text` fit in `limit` UTF-16 code units."""
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form will become a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def chat_id_of(sender_id: str) -> int | None:
    channel, _, chat = sender_id.partition(":")
    try:
        return int(chat) if channel == "telegram" else None
    except ValueError:
        return None


class TelegramConnection:
    """The running Application's bot, once Telegram is connected. The channel (bot/gateway/telegram.py)
    connects it when Telegram answers, long after the gateway was built; the outlet sends through
    it. Both are given this one object when they are made, so neither sets the other's attributes."""

    def __init__(self) -> None:
        self._bot: Bot | None = None

    @property
    def bot(self) -> Bot | None:
        return self._bot

    def connect(self, bot: Bot) -> None:
        self._bot = bot

    def disconnect(self) -> None:
        self._bot = None


class TelegramOutlet:
    """Sends through the running Application's bot (none until Telegram is connected)."""

    def __init__(
        self,
        connection: TelegramConnection,
        *,
        max_tries: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.connection = connection
        self.max_tries, self.max_wait, self._sleep = max_tries, max_wait, sleep

    @property
    def bot(self) -> Bot | None:
        return self.connection.bot

    async def deliver(self, message: Outbound) -> DeliveryResult:
        chat_id = chat_id_of(message.sender_id)
        if chat_id is None:
            return DeliveryResult(OutboundStatus.FAILED, error="not a Telegram chat id")
        if self.bot is None:
            return DeliveryResult(OutboundStatus.QUEUED, error="Telegram is not connected yet")
        text = "\n".join(p for p in (message.text, message.image) if p) or (
            wording.CHOOSE if message.buttons else ""
        )
        if not text:
            return DeliveryResult(OutboundStatus.SKIPPED, error="nothing Telegram can show", attempted=False)
        try:
            sent = await self._send_parts(chat_id, split_text(text), _keyboard(message))
        except Forbidden as error:
            log.warning("telegram refused delivery for good chat=%s: %s", chat_id, error.message)
            return DeliveryResult(OutboundStatus.FAILED, error=error.message, unreachable=True)
        except BadRequest as error:
            return DeliveryResult(OutboundStatus.FAILED, error=error.message)
        except (RetryAfter, NetworkError) as error:
            log.warning("telegram delivery postponed chat=%s: %s", chat_id, type(error).__name__)
            return DeliveryResult(OutboundStatus.QUEUED, error=str(error))
        except TelegramError as error:
            return DeliveryResult(OutboundStatus.FAILED, error=str(error))
        return DeliveryResult(OutboundStatus.SENT, external_id=str(sent.message_id))

    async def _send_parts(
        self, chat_id: int, parts: list[str], keyboard: InlineKeyboardMarkup | None
    ) -> TelegramMessage:
        sent = None
        for number, part in enumerate(parts, start=1):
            sent = await self._send(chat_id, part, keyboard if number == len(parts) else None)
        assert sent is not None
        return sent

    async def _send(self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None) -> TelegramMessage:
        """Send one message as plain text (nothing is parsed as markup), waiting out flood control."""
        assert self.bot is not None
        for attempt in range(1, self.max_tries + 1):
            try:
                return await self.bot.send_message(chat_id=chat_id, text=text, reply_markup=keyboard)
            except RetryAfter as error:
                wait = retry_after_seconds(error)
                if attempt == self.max_tries or wait > self.max_wait:
                    raise
                log.info("telegram flood control: waiting %.1f s chat=%s", wait, chat_id)
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def typing(self, sender_id: str, on: bool, who: str = "bot") -> None:
        chat_id = chat_id_of(sender_id)
        if not on or self.bot is None or chat_id is None:
            return  # Telegram clears "typing…" by itself when the answer arrives
        try:
            await self.bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
        except Exception as error:  # cosmetic: nothing Telegram or its library does may stop the answer
            log.debug("typing indicator not shown chat=%s: %s", chat_id, type(error).__name__)

    async def notify(self, sender_id: str, code: str, text: str, **extra: Any) -> None:
        chat_id = chat_id_of(sender_id)
        if self.bot is None or chat_id is None:
            return
        try:
            await self._send(chat_id, text, None)
        except Exception as error:  # a notice is best effort (e.g. an answer the library cannot parse)
            log.warning("telegram notice %s not sent chat=%s: %s", code, chat_id, type(error).__name__)


def _keyboard(message: Outbound) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    title, callback_data=BUTTON_DATA.format(message_id=message.id, index=index)
                )
            ]
            for index, title in enumerate(message.buttons)
        ]
    )
