"""What every CareLoop action shares: settings, a CRM session, and the customer behind a tracker."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, Tracker
from sqlalchemy.orm import Session

from bot.crm.db import session_scope
from bot.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    """The action server's settings, read once on first use (never at import)."""
    from bot.ops.envfile import load_env_file

    load_env_file(PROJECT_ROOT / ".env")
    return Settings.from_env()


@contextmanager
def crm_session() -> Iterator[Session]:
    """A short CRM transaction for one action run."""
    with session_scope(current_settings().database_url) as session:
        yield session


def latest_intent(tracker: Tracker) -> tuple[str | None, float | None]:
    """The intent and confidence of the customer's latest message."""
    intent: dict[str, Any] = tracker.latest_message.get("intent") or {}
    confidence = intent.get("confidence")
    return intent.get("name"), float(confidence) if confidence is not None else None


class CareLoopAction(Action, abc.ABC):
    """Base for actions; abstract so that rasa_sdk does not register it."""

    @abc.abstractmethod
    def name(self) -> str: ...
