"""One typed settings object, read from the environment and failing fast on what is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    environment: str
    var_dir: Path
    database_url: str
    rasa_url: str
    rasa_token: str
    rasa_tracker_db: Path
    action_server_url: str
    scheduler_db_url: str
    secret_key: str
    models_dir: Path
    telegram_bot_token: str | None
    log_level: str
    demo_data: bool

    @property
    def rasa_port(self) -> int:
        return _port_of(self.rasa_url, "RASA_URL")

    @property
    def action_server_port(self) -> int:
        return _port_of(self.action_server_url, "ACTION_SERVER_URL")

    @property
    def action_endpoint_url(self) -> str:
        return self.action_server_url.rstrip("/") + "/webhook"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        environment = _choice(env, "CARELOOP_ENV", ENVIRONMENTS, "development")
        var_dir = Path(env.get("CARELOOP_VAR_DIR") or PROJECT_ROOT / "var").resolve()
        settings = cls(
            environment=environment,
            var_dir=var_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'crm.db'}",
            rasa_url=_url(env, "RASA_URL", "http://127.0.0.1:5005"),
            rasa_token=_required(env, "RASA_TOKEN"),
            rasa_tracker_db=Path(env.get("RASA_TRACKER_DB") or var_dir / "rasa_tracker.db"),
            action_server_url=_url(env, "ACTION_SERVER_URL", "http://127.0.0.1:5055"),
            scheduler_db_url=env.get("SCHEDULER_DB_URL") or f"sqlite:///{var_dir / 'scheduler.db'}",
            secret_key=_required(env, "SECRET_KEY"),
            models_dir=Path(env.get("CARELOOP_MODELS_DIR") or PROJECT_ROOT / "models").resolve(),
            telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            log_level=_choice(env, "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            demo_data=_flag(env, "CARELOOP_DEMO_DATA", True),
        )
        settings.check_secrets()
        return settings

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for the services the supervisor starts."""
        return {
            "CARELOOP_ENV": self.environment,
            "CARELOOP_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.database_url,
            "RASA_URL": self.rasa_url,
            "RASA_TOKEN": self.rasa_token,
            "RASA_TRACKER_DB": str(self.rasa_tracker_db),
            "ACTION_SERVER_URL": self.action_server_url,
            "SCHEDULER_DB_URL": self.scheduler_db_url,
            "SECRET_KEY": self.secret_key,
            "CARELOOP_MODELS_DIR": str(self.models_dir),
            "TELEGRAM_BOT_TOKEN": self.telegram_bot_token or "",
            "LOG_LEVEL": self.log_level,
            "CARELOOP_DEMO_DATA": "true" if self.demo_data else "false",
        }

    def check_secrets(self) -> None:
        """Refuse weak secrets outside development and tests."""
        if self.environment != "production":
            return
        for name, value in (("RASA_TOKEN", self.rasa_token), ("SECRET_KEY", self.secret_key)):
            if len(value) < 24 or value.startswith("change-me"):
                raise SettingsError(f"{name} is too weak for production: use 24+ random characters")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"missing environment variable {name} (see .env.example)")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true or false)")


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={value!r} must start with http:// or https://")
    return value.rstrip("/")


def _port_of(url: str, name: str) -> int:
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    if port is None:
        raise SettingsError(f"{name}={url!r} must name a port")
    return port
