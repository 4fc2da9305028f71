"""One typed settings object, read from the environment and failing fast on what is missing."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.crm.business_hours import BadBusinessHours, BusinessHours
from bot.crm.sla import SlaRules

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")
SMTP_SECURITY = ("starttls", "ssl", "none")  # none: only for a relay on the same machine
RETURNS_ADDRESS = "CareLoop Returns, Beispielstrasse 1, 10115 Berlin, Germany"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    environment: str
    var_dir: Path
    database_url: str
    rasa_url: str
    rasa_token: str
    rasa_channel_secret: str
    rasa_tracker_db: Path
    action_server_url: str
    action_server_token: str
    scheduler_db_url: str
    secret_key: str
    models_dir: Path
    telegram_bot_token: str | None
    log_level: str
    demo_data: bool
    gateway_url: str
    gateway_host: str
    internal_api_token: str
    telegram_api_base_url: str
    telegram_webhook_url: str | None
    telegram_webhook_secret: str | None
    gateway_rasa_timeout: float
    gateway_rasa_patience: float
    gateway_retry_seconds: float
    gateway_max_message_chars: int
    gateway_rate_limit_per_minute: int
    webchat_allowed_origins: tuple[str, ...]
    widget_identity_secret: str
    scheduler_url: str
    quiet_hours: str
    outreach_weekly_cap: int
    outreach_rate_per_second: float
    holidays: tuple[str, ...]
    business_timezone: str
    business_hours: str
    sla_at_risk_share: float  # of a case's promised time used: its team is warned
    sla_update_share: float  # used: the customer is told the new time, before the promise passes
    sla_office_hours_teams: tuple[str, ...]  # teams whose case clocks count BUSINESS_HOURS only
    agent_online_seconds: float
    agent_away_seconds: float
    unattended_seconds: float
    follow_up_minutes: float  # a message this soon after a person closed the chat goes to people again
    supervisor_restart_limit: int
    supervisor_restart_window: float
    supervisor_backoff_seconds: float
    supervisor_backoff_max_seconds: float
    console_session_idle_minutes: float
    console_session_max_hours: float
    console_trusted_proxies: tuple[str, ...]
    nlu_review_confidence: float
    nlu_review_dir: Path
    smtp_host: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_security: str
    mail_from: str
    public_url: str
    returns_address: str

    @property
    def rasa_port(self) -> int:
        return _port_of(self.rasa_url, "RASA_URL")

    @property
    def action_server_port(self) -> int:
        return _port_of(self.action_server_url, "ACTION_SERVER_URL")

    @property
    def scheduler_port(self) -> int:
        return _port_of(self.scheduler_url, "SCHEDULER_URL")

    @property
    def gateway_port(self) -> int:
        return _port_of(self.gateway_url, "GATEWAY_URL")

    @property
    def mail_dir(self) -> Path:
        """Where mails are written instead of sent while no SMTP_HOST is set (one .eml each)."""
        return self.var_dir / "mail"

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
            rasa_channel_secret=_secret_or_derived(env, "RASA_CHANNEL_SECRET", "rasa channel secret"),
            rasa_tracker_db=Path(env.get("RASA_TRACKER_DB") or var_dir / "rasa_tracker.db"),
            action_server_url=_url(env, "ACTION_SERVER_URL", "http://127.0.0.1:5055"),
            action_server_token=_secret_or_derived(env, "ACTION_SERVER_TOKEN", "action server token"),
            scheduler_db_url=env.get("SCHEDULER_DB_URL") or f"sqlite:///{var_dir / 'scheduler.db'}",
            secret_key=_required(env, "SECRET_KEY"),
            models_dir=Path(env.get("CARELOOP_MODELS_DIR") or PROJECT_ROOT / "models").resolve(),
            telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            log_level=_choice(env, "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            demo_data=_flag(env, "CARELOOP_DEMO_DATA", True),
            gateway_url=_url(env, "GATEWAY_URL", "http://127.0.0.1:8000"),
            gateway_host=env.get("GATEWAY_HOST") or "127.0.0.1",
            internal_api_token=_secret_or_derived(env, "INTERNAL_API_TOKEN", "internal api token"),
            telegram_api_base_url=_url(env, "TELEGRAM_API_BASE_URL", "https://api.telegram.org"),
            telegram_webhook_url=_optional_url(env, "TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET") or None,
            gateway_rasa_timeout=_number(env, "GATEWAY_RASA_TIMEOUT", 10.0),
            gateway_rasa_patience=_number(env, "GATEWAY_RASA_PATIENCE", 120.0),
            gateway_retry_seconds=_number(env, "GATEWAY_RETRY_SECONDS", 15.0),
            gateway_max_message_chars=int(_number(env, "GATEWAY_MAX_MESSAGE_CHARS", 4000)),
            gateway_rate_limit_per_minute=int(_number(env, "GATEWAY_RATE_LIMIT_PER_MINUTE", 20)),
            webchat_allowed_origins=_list(env, "WEBCHAT_ALLOWED_ORIGINS", "*"),
            widget_identity_secret=_secret_or_derived(
                env, "WIDGET_IDENTITY_SECRET", "widget identity secret"
            ),
            scheduler_url=_url(env, "SCHEDULER_URL", "http://127.0.0.1:5056"),
            quiet_hours=env.get("OUTREACH_QUIET_HOURS") or "21:00-09:00",
            outreach_weekly_cap=int(_number(env, "OUTREACH_WEEKLY_CAP", 3)),
            outreach_rate_per_second=_number(env, "OUTREACH_RATE_PER_SECOND", 25.0),
            holidays=_list(env, "OUTREACH_HOLIDAYS", "12-25 Christmas,01-01 New Year"),
            business_timezone=env.get("BUSINESS_TIMEZONE") or "Europe/Berlin",
            business_hours=env.get("BUSINESS_HOURS") or "mon-fri 08:00-20:00, sat 09:00-16:00",
            sla_at_risk_share=_fraction(env, "SLA_AT_RISK_SHARE", 0.75),
            sla_update_share=_fraction(env, "SLA_UPDATE_SHARE", 0.9),
            sla_office_hours_teams=_list(env, "SLA_OFFICE_HOURS_TEAMS", ""),
            agent_online_seconds=_number(env, "CONSOLE_AGENT_ONLINE_SECONDS", 60.0),
            agent_away_seconds=_number(env, "CONSOLE_AGENT_AWAY_SECONDS", 120.0),
            unattended_seconds=_number(env, "HANDOFF_UNATTENDED_SECONDS", 300.0),
            follow_up_minutes=_number(env, "HANDOFF_FOLLOW_UP_MINUTES", 30.0),
            supervisor_restart_limit=int(_number(env, "SUPERVISOR_RESTART_LIMIT", 5)),
            supervisor_restart_window=_number(env, "SUPERVISOR_RESTART_WINDOW_SECONDS", 120.0),
            supervisor_backoff_seconds=_number(env, "SUPERVISOR_BACKOFF_SECONDS", 1.0),
            supervisor_backoff_max_seconds=_number(env, "SUPERVISOR_BACKOFF_MAX_SECONDS", 30.0),
            console_session_idle_minutes=_number(env, "CONSOLE_SESSION_IDLE_MINUTES", 30.0),
            console_session_max_hours=_number(env, "CONSOLE_SESSION_MAX_HOURS", 12.0),
            console_trusted_proxies=_networks(env, "CONSOLE_TRUSTED_PROXIES"),
            nlu_review_confidence=_fraction(env, "NLU_REVIEW_CONFIDENCE", 0.6),
            nlu_review_dir=Path(
                env.get("NLU_REVIEW_DIR") or PROJECT_ROOT / "data" / "nlu" / "review"
            ).resolve(),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(_number(env, "SMTP_PORT", 587)),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_security=_choice(env, "SMTP_SECURITY", SMTP_SECURITY, "starttls"),
            mail_from=env.get("MAIL_FROM") or "CareLoop <care@careloop.example>",
            public_url=_url(env, "PUBLIC_URL", env.get("GATEWAY_URL") or "http://127.0.0.1:8000"),
            returns_address=env.get("RETURNS_ADDRESS") or RETURNS_ADDRESS,
        )
        settings.opening_hours()  # a mistyped spec stops the start with a clear message
        settings.sla_rules()
        settings.check_secrets()
        settings.check_telegram()
        return settings

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for the services the supervisor starts."""
        return {
            "CARELOOP_ENV": self.environment,
            "CARELOOP_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.database_url,
            "RASA_URL": self.rasa_url,
            "RASA_TOKEN": self.rasa_token,
            "RASA_CHANNEL_SECRET": self.rasa_channel_secret,
            "RASA_TRACKER_DB": str(self.rasa_tracker_db),
            "ACTION_SERVER_URL": self.action_server_url,
            "ACTION_SERVER_TOKEN": self.action_server_token,
            "SCHEDULER_DB_URL": self.scheduler_db_url,
            "SECRET_KEY": self.secret_key,
            "CARELOOP_MODELS_DIR": str(self.models_dir),
            "TELEGRAM_BOT_TOKEN": self.telegram_bot_token or "",
            "LOG_LEVEL": self.log_level,
            "CARELOOP_DEMO_DATA": "true" if self.demo_data else "false",
            "GATEWAY_URL": self.gateway_url,
            "GATEWAY_HOST": self.gateway_host,
            "INTERNAL_API_TOKEN": self.internal_api_token,
            "TELEGRAM_API_BASE_URL": self.telegram_api_base_url,
            "TELEGRAM_WEBHOOK_URL": self.telegram_webhook_url or "",
            "TELEGRAM_WEBHOOK_SECRET": self.telegram_webhook_secret or "",
            "GATEWAY_RASA_TIMEOUT": repr(self.gateway_rasa_timeout),
            "GATEWAY_RASA_PATIENCE": repr(self.gateway_rasa_patience),
            "GATEWAY_RETRY_SECONDS": repr(self.gateway_retry_seconds),
            "GATEWAY_MAX_MESSAGE_CHARS": str(self.gateway_max_message_chars),
            "GATEWAY_RATE_LIMIT_PER_MINUTE": str(self.gateway_rate_limit_per_minute),
            "WEBCHAT_ALLOWED_ORIGINS": ",".join(self.webchat_allowed_origins),
            "WIDGET_IDENTITY_SECRET": self.widget_identity_secret,
            "SCHEDULER_URL": self.scheduler_url,
            "OUTREACH_QUIET_HOURS": self.quiet_hours,
            "OUTREACH_WEEKLY_CAP": str(self.outreach_weekly_cap),
            "OUTREACH_RATE_PER_SECOND": repr(self.outreach_rate_per_second),
            "OUTREACH_HOLIDAYS": ",".join(self.holidays),
            "BUSINESS_TIMEZONE": self.business_timezone,
            "BUSINESS_HOURS": self.business_hours,
            "SLA_AT_RISK_SHARE": repr(self.sla_at_risk_share),
            "SLA_UPDATE_SHARE": repr(self.sla_update_share),
            "SLA_OFFICE_HOURS_TEAMS": ",".join(self.sla_office_hours_teams),
            "CONSOLE_AGENT_ONLINE_SECONDS": repr(self.agent_online_seconds),
            "CONSOLE_AGENT_AWAY_SECONDS": repr(self.agent_away_seconds),
            "HANDOFF_UNATTENDED_SECONDS": repr(self.unattended_seconds),
            "HANDOFF_FOLLOW_UP_MINUTES": repr(self.follow_up_minutes),
            "SUPERVISOR_RESTART_LIMIT": str(self.supervisor_restart_limit),
            "SUPERVISOR_RESTART_WINDOW_SECONDS": repr(self.supervisor_restart_window),
            "SUPERVISOR_BACKOFF_SECONDS": repr(self.supervisor_backoff_seconds),
            "SUPERVISOR_BACKOFF_MAX_SECONDS": repr(self.supervisor_backoff_max_seconds),
            "CONSOLE_SESSION_IDLE_MINUTES": repr(self.console_session_idle_minutes),
            "CONSOLE_SESSION_MAX_HOURS": repr(self.console_session_max_hours),
            "CONSOLE_TRUSTED_PROXIES": ",".join(self.console_trusted_proxies),
            "NLU_REVIEW_CONFIDENCE": repr(self.nlu_review_confidence),
            "NLU_REVIEW_DIR": str(self.nlu_review_dir),
            "SMTP_HOST": self.smtp_host or "",
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_USERNAME": self.smtp_username or "",
            "SMTP_PASSWORD": self.smtp_password or "",
            "SMTP_SECURITY": self.smtp_security,
            "MAIL_FROM": self.mail_from,
            "PUBLIC_URL": self.public_url,
            "RETURNS_ADDRESS": self.returns_address,
        }

    def opening_hours(self) -> BusinessHours:
        """When people are at work (BUSINESS_HOURS in BUSINESS_TIMEZONE)."""
        try:
            return BusinessHours.parse(self.business_hours, self.business_timezone)
        except BadBusinessHours as error:
            raise SettingsError(f"BUSINESS_HOURS: {error}") from error

    def sla_rules(self) -> SlaRules:
        """How complaint cases' clocks count (SLA_* settings, with BUSINESS_HOURS)."""
        teams = {"logistics", "billing", "quality", "customer_care", "tech"}
        unknown = sorted(set(self.sla_office_hours_teams) - teams)
        if unknown:
            raise SettingsError(
                f"SLA_OFFICE_HOURS_TEAMS: no team {', '.join(unknown)} (teams: {', '.join(sorted(teams))})"
            )
        if not 0 < self.sla_at_risk_share < self.sla_update_share < 1:
            raise SettingsError(
                "SLA_AT_RISK_SHARE must be less than SLA_UPDATE_SHARE, both between 0 and 1 "
                f"(not {self.sla_at_risk_share} and {self.sla_update_share})"
            )
        return SlaRules(
            at_risk_share=self.sla_at_risk_share,
            update_share=self.sla_update_share,
            office_hours=self.opening_hours(),
            office_teams=frozenset(self.sla_office_hours_teams),
        )

    def check_secrets(self) -> None:
        """Refuse weak secrets outside development and tests."""
        if self.environment != "production":
            return
        secrets = (
            ("RASA_TOKEN", self.rasa_token),
            ("SECRET_KEY", self.secret_key),
            ("INTERNAL_API_TOKEN", self.internal_api_token),
            ("RASA_CHANNEL_SECRET", self.rasa_channel_secret),
            ("ACTION_SERVER_TOKEN", self.action_server_token),
            ("WIDGET_IDENTITY_SECRET", self.widget_identity_secret),
        )
        for name, value in secrets:
            if len(value) < 24 or value.startswith("change-me"):
                raise SettingsError(f"{name} is too weak for production: use 24+ random characters")

    def check_telegram(self) -> None:
        """Webhook mode needs a secret Telegram echoes back, or anyone could post fake updates."""
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise SettingsError("TELEGRAM_WEBHOOK_URL is set: set TELEGRAM_WEBHOOK_SECRET too")
        secret = self.telegram_webhook_secret or ""
        if secret and not (len(secret) <= 256 and all(c.isalnum() or c in "_-" for c in secret)):
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1-256 chars)")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"missing environment variable {name} (see .env.example)")
    return value


def _secret_or_derived(env: Mapping[str, str], name: str, purpose: str) -> str:
    """The secret `name`, or when left empty one derived from SECRET_KEY for `purpose` (as strong
    as it, and different for each purpose)."""
    value = env.get(name, "").strip()
    if value:
        return value
    # Every process derives the same value, so e.g. the scheduler and the gateway agree without
    # setup, and an .env written before a secret existed keeps working.
    key = _required(env, "SECRET_KEY").encode()
    return hmac.new(key, f"careloop {purpose}".encode(), hashlib.sha256).hexdigest()


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


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    return _url(env, name, "") if env.get(name) else None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name) or default
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (empty: none), each checked."""
    networks = tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise SettingsError(f"{name}: {network!r} is not an IP address or network") from None
    return networks


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if not 0 <= value <= 1:
        raise SettingsError(f"{name} must be between 0 and 1, not {value}")
    return value


def _port_of(url: str, name: str) -> int:
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    if port is None:
        raise SettingsError(f"{name}={url!r} must name a port")
    return port
