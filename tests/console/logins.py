"""Console users and settings for tests: one user per role, each with the password
`<username>-pw`."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from sqlalchemy.orm import Session

from bot.crm.models import Agent, Role
from bot.crm.passwords import hash_password
from bot.settings import Settings

ROLES = {"ada": Role.ADMIN, "alex": Role.AGENT, "mo": Role.MARKETER}


def add_console_users(session: Session, roles: Mapping[str, Role] = ROLES) -> None:
    for username, role in roles.items():
        session.add(
            Agent(
                username=username,
                display_name=username.title(),
                role=role,
                password_hash=hash_password(f"{username}-pw"),
            )
        )


def console_settings(database_url: str) -> Settings:
    """Settings for a console app on `database_url`, with a fresh secret."""
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "RASA_TOKEN": "t" * 32,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "CARELOOP_ENV": "test",
        }
    )
