"""What a channel must do to deliver the bot's messages, and the message as channels see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.crm.models import Message, OutboundStatus


@dataclass(frozen=True)
class Outbound:
    """A stored outbound message, ready for a channel to render."""

    id: int
    sender_id: str
    author: str  # bot | agent | system
    text: str | None
    buttons: tuple[str, ...]  # titles; a click is resolved against the stored message
    image: str | None
    created_at: datetime

    @classmethod
    def of(cls, message: Message, sender_id: str) -> Outbound:
        payload = message.payload or {}
        return cls(
            id=message.id,
            sender_id=sender_id,
            author=message.author.value,
            text=message.text,
            buttons=tuple(str(b.get("title", "")) for b in payload.get("buttons") or []),
            image=payload.get("image"),
            created_at=message.created_at,
        )


@dataclass(frozen=True)
class DeliveryResult:
    status: OutboundStatus
    external_id: str | None = None
    error: str | None = None
    attempted: bool = True  # False: nothing was tried (e.g. the web visitor is not connected)
    unreachable: bool = False  # the channel refused for good: stop trying this identity


class Outlet(Protocol):
    """One channel's way out to customers."""

    async def deliver(self, message: Outbound) -> DeliveryResult: ...

    async def typing(self, sender_id: str, on: bool, who: str = "bot") -> None:
        """Show or clear "<who> is typing" (who: "bot" or "agent", a person at the console)."""
        ...

    async def notify(self, sender_id: str, code: str, text: str, **extra: Any) -> None:
        """Tell the customer why their message was not accepted (not part of the transcript)."""
        ...
