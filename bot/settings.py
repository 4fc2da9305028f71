"""Every CareLoop setting, declared once: its attribute, type, environment variable, default and comment.

Each field of `Settings` carries one `Setting`: `Settings.from_env` reads the fields from it, and
`Settings.to_env` writes them back for the services the supervisor starts; `bot/ops/envfile.py`
writes `.env.example` from the same declarations (tests/ops/test_envfile.py fails while the two
differ). A variable is the attribute's name in capitals unless its `Setting` names another.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from bot.crm.business_hours import BadBusinessHours, BusinessHours
from bot.crm.sla import SlaRules

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SMTP_SECURITY = ("starttls", "ssl", "none")  # none: only for a relay on the same machine
SLA_TEAMS = ("logistics", "billing", "quality", "customer_care", "tech")
RETURNS_ADDRESS = "CareLoop Returns, Beispielstrasse 1, 10115 Berlin, Germany"

T = TypeVar("T")
Derive = Callable[[Mapping[str, Any]], str]  # a default from the settings read before it


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Kind(Generic[T]):
    """How one kind of value is read from its text in the environment, and written back."""

    name: str
    read: Callable[[str], T]  # raises ValueError saying what is wrong, e.g. "is not a number"
    write: Callable[[T], str] = str
    empty: T | None = None  # the value of an empty setting without a default


@dataclass(frozen=True)
class Setting:
    """One setting's environment variable: how it is read, its default and its comment."""

    doc: str  # the comment above it in .env.example
    kind: Kind[Any]
    default: str = ""  # as written in .env; empty, with nothing derived or required: the kind's empty
    derive: Derive | None = None  # the default when it depends on other settings or this machine
    required: bool = False
    secret: bool = False  # .env gets a fresh random value; production refuses a weak one
    name: str = ""  # the variable, when it is not the attribute's name in capitals
    heading: str = ""  # starts a group in .env.example
    attribute: str = ""  # filled in by `declared()`

    @property
    def example(self) -> str:
        """The value .env.example shows: the default, unless it is derived or a secret."""
        return "" if self.secret or self.derive else self.default

    def read_from(self, env: Mapping[str, str], read: Mapping[str, Any]) -> Any:
        """This setting's value from `env`, given the settings `read` before it."""
        raw = env.get(self.name, "").strip()
        if not raw:
            if self.required:
                raise SettingsError(f"missing environment variable {self.name} (see .env.example)")
            raw = self.derive(read) if self.derive else self.default
            if not raw:
                return self.kind.empty
        try:
            return self.kind.read(raw)
        except ValueError as error:
            raise SettingsError(f"{self.name}={raw!r} {error}") from None

    def write(self, value: Any) -> str:
        """`value` as this setting's environment text (None as empty)."""
        return "" if value is None else self.kind.write(value)


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return raw.rstrip("/")


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(value):
        raise ValueError("is not a number")
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _count(raw: str) -> int:
    value = _number(raw)
    if not value.is_integer():
        raise ValueError("is not a whole number")
    return int(value)


def _fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 < value <= 1:
        raise ValueError("must be between 0 and 1 (above 0, at most 1)")
    return value


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not a boolean (use true or false)")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _networks(raw: str) -> tuple[str, ...]:
    networks = tuple(item.strip() for item in raw.split(",") if item.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"holds {network!r}, which is not an IP address or network") from None
    return networks


def choice(*allowed: str) -> Kind[str]:
    """One of `allowed`, spelled exactly."""

    def read(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"is not one of {', '.join(allowed)}")
        return raw

    return Kind("choice", read)


def _joined(values: tuple[str, ...]) -> str:
    return ",".join(values)


def _true_or_false(value: bool) -> str:
    return "true" if value else "false"


TEXT: Kind[str] = Kind("text", str)
URL: Kind[str] = Kind("url", _url)
NUMBER: Kind[float] = Kind("number", _number, repr)
COUNT: Kind[int] = Kind("count", _count)
FRACTION: Kind[float] = Kind("fraction", _fraction, repr)
FLAG: Kind[bool] = Kind("flag", _flag, _true_or_false)
LIST: Kind[tuple[str, ...]] = Kind("list", _list, _joined, ())
NETWORKS: Kind[tuple[str, ...]] = Kind("networks", _networks, _joined, ())
PATH: Kind[Path] = Kind("path", lambda raw: Path(raw).expanduser().resolve())


def _in_project(*parts: str) -> Derive:
    return lambda read: str(PROJECT_ROOT.joinpath(*parts))


def _in_var_dir(file: str) -> Derive:
    return lambda read: str(read["var_dir"] / file)


def _sqlite_in_var_dir(file: str) -> Derive:
    return lambda read: f"sqlite:///{read['var_dir'] / file}"


def _same_as(attribute: str) -> Derive:
    return lambda read: str(read[attribute])


def _from_secret_key(purpose: str) -> Derive:
    """A secret derived from SECRET_KEY for `purpose`: as strong as it, and different for each purpose."""
    # Every process derives the same value, so e.g. the scheduler and the gateway agree without
    # setup, and an .env written before a secret existed keeps working.
    return lambda read: hmac.new(
        read["secret_key"].encode(), f"careloop {purpose}".encode(), hashlib.sha256
    ).hexdigest()


S = Setting
DERIVED_SECRET = "When empty, one derived from SECRET_KEY is used."


@dataclass(frozen=True)
class Settings:
    """Every setting, read from the environment (see the module's docstring)."""

    environment: Annotated[
        str,
        S(
            "development | test | production (production refuses weak secrets)",
            choice(*ENVIRONMENTS),
            "development",
            name="CARELOOP_ENV",
            heading="The installation",
        ),
    ]
    var_dir: Annotated[
        Path,
        S(
            "Where SQLite files, logs and other local state live (default: ./var)",
            PATH,
            derive=_in_project("var"),
            name="CARELOOP_VAR_DIR",
        ),
    ]
    demo_data: Annotated[
        bool,
        S(
            "Fill a new, empty CRM with the demo population on first run (true/false)",
            FLAG,
            "true",
            name="CARELOOP_DEMO_DATA",
        ),
    ]
    models_dir: Annotated[
        Path,
        S(
            "Where trained Rasa models are kept (default: ./models)",
            PATH,
            derive=_in_project("models"),
            name="CARELOOP_MODELS_DIR",
        ),
    ]
    database_url: Annotated[
        str,
        S(
            "The CRM database. Empty: SQLite at var/crm.db. PostgreSQL, for example: "
            "postgresql+psycopg://careloop:secret@localhost:5432/careloop",
            TEXT,
            derive=_sqlite_in_var_dir("crm.db"),
            heading="Where data lives, and the services behind the gateway",
        ),
    ]
    rasa_url: Annotated[
        str, S("The Rasa server (its HTTP API is on, protected by RASA_TOKEN)", URL, "http://127.0.0.1:5005")
    ]
    rasa_token: Annotated[str, S("Protects Rasa's HTTP API. Required.", TEXT, required=True, secret=True)]
    rasa_tracker_db: Annotated[
        Path,
        S(
            "Rasa's SQL tracker store (default: var/rasa_tracker.db)",
            PATH,
            derive=_in_var_dir("rasa_tracker.db"),
        ),
    ]
    action_server_url: Annotated[str, S("The action server", URL, "http://127.0.0.1:5055")]
    scheduler_db_url: Annotated[
        str,
        S(
            "The scheduler's persistent job store (default: SQLite at var/scheduler.db)",
            TEXT,
            derive=_sqlite_in_var_dir("scheduler.db"),
        ),
    ]
    secret_key: Annotated[
        str,
        S(
            "Signs console sessions, web chat visitor tokens and Telegram link tokens. Required.",
            TEXT,
            required=True,
            secret=True,
            heading="Secrets",
        ),
    ]
    internal_api_token: Annotated[
        str,
        S(
            "Protects the gateway's internal API (/internal/..., used by the scheduler and the console). "
            + DERIVED_SECRET,
            TEXT,
            derive=_from_secret_key("internal api token"),
            secret=True,
        ),
    ]
    rasa_channel_secret: Annotated[
        str,
        S(
            "Only the gateway may post customer messages to Rasa: its channel at "
            "/webhooks/gateway/webhook checks this secret. " + DERIVED_SECRET,
            TEXT,
            derive=_from_secret_key("rasa channel secret"),
            secret=True,
        ),
    ]
    action_server_token: Annotated[
        str,
        S(
            "Only Rasa may call the action server, which checks this token. " + DERIVED_SECRET,
            TEXT,
            derive=_from_secret_key("action server token"),
            secret=True,
        ),
    ]
    gateway_url: Annotated[
        str,
        S(
            "Where the other services reach the gateway, the only service customers talk to (web chat "
            "widget, demo shop page, Telegram); it listens at this URL's port",
            URL,
            "http://127.0.0.1:8000",
            heading="The gateway",
        ),
    ]
    gateway_host: Annotated[str, S("The address the gateway listens on", TEXT, "127.0.0.1")]
    gateway_rasa_timeout: Annotated[
        float,
        S(
            "Seconds to wait for Rasa before the customer gets a holding answer; also the limit for "
            "the gateway's other calls to Rasa",
            NUMBER,
            "10",
        ),
    ]
    gateway_rasa_patience: Annotated[
        float,
        S(
            "Seconds the gateway keeps waiting for Rasa's answer to a customer message after the "
            "holding answer (Rasa drops a turn whose caller hangs up); no answer by then counts as "
            "Rasa being down",
            NUMBER,
            "120",
        ),
    ]
    gateway_retry_seconds: Annotated[
        float, S("Seconds between retries of stored messages Rasa has not answered yet", NUMBER, "15")
    ]
    gateway_max_message_chars: Annotated[
        int, S("Longest customer message accepted, in characters", COUNT, "4000")
    ]
    gateway_rate_limit_per_minute: Annotated[int, S("Messages per sender per minute", COUNT, "20")]
    webchat_allowed_origins: Annotated[
        tuple[str, ...],
        S("Comma-separated origins of the web pages allowed to embed the chat widget (* = any)", LIST, "*"),
    ]
    widget_identity_secret: Annotated[
        str,
        S(
            "Identity verification of logged-in shop customers in the widget: the shop's server sends "
            "user_hash = HMAC-SHA256(customer external_id, this secret) with the widget (README, "
            '"Connect your shop"). Keep it on the server. ' + DERIVED_SECRET,
            TEXT,
            derive=_from_secret_key("widget identity secret"),
            secret=True,
        ),
    ]
    telegram_bot_token: Annotated[
        str | None,
        S(
            "Your bot's token from @BotFather, to connect a real Telegram bot (optional). Long polling "
            "by default: works without a public URL.",
            TEXT,
            heading="Telegram",
        ),
    ]
    telegram_webhook_url: Annotated[
        str | None,
        S(
            "Webhook mode instead: the public HTTPS URL that reaches the gateway's /telegram/webhook, "
            "e.g. https://chat.example.com/telegram/webhook",
            URL,
        ),
    ]
    telegram_webhook_secret: Annotated[
        str | None, S("Telegram echoes this secret in a header in webhook mode", TEXT, secret=True)
    ]
    telegram_api_base_url: Annotated[
        str,
        S(
            "The Bot API server (change only for a self-hosted Bot API server or tests)",
            URL,
            "https://api.telegram.org",
        ),
    ]
    log_level: Annotated[
        str, S(" | ".join(LOG_LEVELS), choice(*LOG_LEVELS), "INFO", heading="Logging and the scheduler")
    ]
    scheduler_url: Annotated[
        str,
        S(
            "The scheduler service (its loopback health endpoint; jobs live in SCHEDULER_DB_URL)",
            URL,
            "http://127.0.0.1:5056",
        ),
    ]
    outreach_quiet_hours: Annotated[
        str,
        S(
            "Quiet hours, in each customer's time zone: a proactive message due then is delayed to "
            "their end, never dropped",
            TEXT,
            "21:00-09:00",
            heading="Proactive outreach (the scheduler's policy gate)",
        ),
    ]
    outreach_weekly_cap: Annotated[
        int,
        S(
            "At most this many proactive messages per customer per 7 days, across campaigns and check-ins",
            COUNT,
            "3",
        ),
    ]
    outreach_rate_per_second: Annotated[
        float,
        S(
            "Sending pace for campaigns (Telegram allows about 30 messages per second per bot)",
            NUMBER,
            "25",
        ),
    ]
    outreach_holidays: Annotated[
        tuple[str, ...],
        S("Holiday greetings: MM-DD Name, comma separated", LIST, "12-25 Christmas,01-01 New Year"),
    ]
    business_timezone: Annotated[
        str,
        S(
            "The business's own time zone (business hours, reports)",
            TEXT,
            "Europe/Berlin",
            heading="Business hours, cases and handoff",
        ),
    ]
    business_hours: Annotated[
        str,
        S(
            "When people answer chats (weekday or range, one time range each; days not named are "
            "closed). Outside these hours, or with nobody online, a request for a person becomes a "
            "callback case.",
            TEXT,
            "mon-fri 08:00-20:00, sat 09:00-16:00",
        ),
    ]
    sla_at_risk_share: Annotated[
        float,
        S(
            'Complaint cases\' clocks (the scheduler acts on them; docs/cases.md). A case is "at risk" '
            "once this share of the time promised to the customer is used: its owner (or, with none, "
            "its team) is notified in the console.",
            FRACTION,
            "0.75",
        ),
    ]
    sla_update_share: Annotated[
        float,
        S(
            "At this share, before the promise passes, the team lead is notified, the case's priority "
            "goes up and the customer is told honestly that we need longer, with a new time (once per "
            "case and round)",
            FRACTION,
            "0.9",
        ),
    ]
    sla_office_hours_teams: Annotated[
        tuple[str, ...],
        S(
            "Teams that work office hours (BUSINESS_HOURS), comma separated, e.g. billing,quality: "
            "their clocks, and the time the bot promises when a complaint is filed, count only opening "
            "hours. Empty: every team counts every hour. Teams: " + ", ".join(SLA_TEAMS) + ".",
            LIST,
        ),
    ]
    console_agent_online_seconds: Annotated[
        float,
        S("An agent counts as online when the console was open within this many seconds", NUMBER, "60"),
    ]
    console_agent_away_seconds: Annotated[
        float,
        S(
            "An agent unseen by the console for longer than this many seconds has their chats "
            "returned to the queue",
            NUMBER,
            "120",
        ),
    ]
    handoff_unattended_seconds: Annotated[
        float,
        S(
            "A customer waiting for a person while nobody has had the console open for this long gets "
            "a callback promise instead, and the bot takes the conversation again",
            NUMBER,
            "300",
        ),
    ]
    handoff_follow_up_minutes: Annotated[
        float,
        S(
            "A customer who writes again within this many minutes of a person closing their chat goes "
            "back to that person if they are at the console, otherwise to the queue marked as a "
            "follow-up",
            NUMBER,
            "30",
        ),
    ]
    supervisor_restart_limit: Annotated[
        int,
        S(
            "The supervisor (make run) restarts a service that exits; only when one service fails this "
            "many times within SUPERVISOR_RESTART_WINDOW_SECONDS does it give up: it stops everything "
            "and exits non-zero.",
            COUNT,
            "5",
            heading="The supervisor",
        ),
    ]
    supervisor_restart_window_seconds: Annotated[
        float, S("The window SUPERVISOR_RESTART_LIMIT counts failures in, in seconds", NUMBER, "120")
    ]
    supervisor_backoff_seconds: Annotated[
        float,
        S(
            "The wait before a restart, in seconds; it doubles with each recent failure",
            NUMBER,
            "1",
        ),
    ]
    supervisor_backoff_max_seconds: Annotated[
        float, S("The longest wait before a restart, in seconds", NUMBER, "30")
    ]
    console_session_idle_minutes: Annotated[
        float,
        S(
            "A console session ends after this many minutes without use (logging out, a password "
            "reset, a role change or deactivation end it at once)",
            NUMBER,
            "30",
            heading="The agent console",
        ),
    ]
    console_session_max_hours: Annotated[
        float, S("A console session ends this many hours after the login, however busy", NUMBER, "12")
    ]
    console_trusted_proxies: Annotated[
        tuple[str, ...],
        S(
            "Behind a reverse proxy: its addresses or networks, comma separated (e.g. "
            "10.0.0.5,172.16.0.0/12). Only connections from these may name the client in "
            "X-Forwarded-For (the login throttle counts per client). Empty: the connection's own "
            "address is the client.",
            NETWORKS,
        ),
    ]
    nlu_review_confidence: Annotated[
        float,
        S(
            "The console's NLU review (admins): customer messages Rasa read with less confidence than "
            'this (0-1) are listed as "unsure", besides those it did not understand at all.',
            FRACTION,
            "0.6",
        ),
    ]
    nlu_review_dir: Annotated[
        Path,
        S(
            "Where its export writes a new review-<date>-<n>.yml of corrected examples (default: "
            "data/nlu/review, read by the next `rasa train`). Review the file, then commit it.",
            PATH,
            derive=_in_project("data", "nlu", "review"),
        ),
    ]
    smtp_host: Annotated[
        str | None,
        S(
            "The SMTP server for mail to customers: confirmations, receipts and address checks (to "
            "their confirmed address only). Empty: nothing is sent; each mail is written to var/mail/ "
            "as an .eml file and shown to admins on the console's Outbox page.",
            TEXT,
            heading="Email",
        ),
    ]
    smtp_port: Annotated[int, S("The SMTP server's port", COUNT, "587")]
    smtp_username: Annotated[str | None, S("The SMTP login (empty: none)", TEXT)]
    smtp_password: Annotated[str | None, S("The SMTP password", TEXT)]
    smtp_security: Annotated[
        str,
        S(
            "starttls (port 587), ssl (port 465), or none (only for a relay on this machine)",
            choice(*SMTP_SECURITY),
            "starttls",
        ),
    ]
    mail_from: Annotated[
        str,
        S(
            "The sender customers see, e.g. CareLoop <care@your-shop.example>",
            TEXT,
            "CareLoop <care@careloop.example>",
        ),
    ]
    public_url: Annotated[
        str,
        S(
            "The gateway's address as customers reach it; links in mails (address confirmation) point "
            "here. Empty: GATEWAY_URL.",
            URL,
            derive=_same_as("gateway_url"),
        ),
    ]
    returns_address: Annotated[
        str,
        S("Where customers send items back (printed in the refund confirmation mail)", TEXT, RETURNS_ADDRESS),
    ]

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
        read: dict[str, Any] = {}
        for setting in declared():
            read[setting.attribute] = setting.read_from(env, read)
        settings = cls(**read)
        settings.opening_hours()  # a mistyped spec stops the start with a clear message
        settings.sla_rules()
        settings.check_secrets()
        settings.check_telegram()
        return settings

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for the services the supervisor starts."""
        return {setting.name: setting.write(getattr(self, setting.attribute)) for setting in declared()}

    def opening_hours(self) -> BusinessHours:
        """When people are at work (BUSINESS_HOURS in BUSINESS_TIMEZONE)."""
        try:
            return BusinessHours.parse(self.business_hours, self.business_timezone)
        except BadBusinessHours as error:
            raise SettingsError(f"BUSINESS_HOURS: {error}") from error

    def sla_rules(self) -> SlaRules:
        """How complaint cases' clocks count (SLA_* settings, with BUSINESS_HOURS)."""
        unknown = sorted(set(self.sla_office_hours_teams) - set(SLA_TEAMS))
        if unknown:
            teams = ", ".join(sorted(SLA_TEAMS))
            raise SettingsError(f"SLA_OFFICE_HOURS_TEAMS: no team {', '.join(unknown)} (teams: {teams})")
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
        """Refuse weak secrets outside development and tests (those every installation has)."""
        if self.environment != "production":
            return
        for setting in declared():
            value = getattr(self, setting.attribute)
            if not (setting.secret and (setting.required or setting.derive)):
                continue  # an optional secret (Telegram's webhook) is checked where it is used
            if len(value) < 24 or value.startswith("change-me"):
                raise SettingsError(f"{setting.name} is too weak for production: use 24+ random characters")

    def check_telegram(self) -> None:
        """Webhook mode needs a secret Telegram echoes back, or anyone could post fake updates."""
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise SettingsError("TELEGRAM_WEBHOOK_URL is set: set TELEGRAM_WEBHOOK_SECRET too")
        secret = self.telegram_webhook_secret or ""
        if secret and not (len(secret) <= 256 and all(c.isalnum() or c in "_-" for c in secret)):
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1-256 chars)")


@cache
def declared() -> tuple[Setting, ...]:
    """Every setting in the order of `Settings`, each with its attribute and variable filled in."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    settings = []
    for field in fields(Settings):
        (setting,) = (extra for extra in typing.get_args(hints[field.name])[1:] if isinstance(extra, Setting))
        settings.append(replace(setting, attribute=field.name, name=setting.name or field.name.upper()))
    return tuple(settings)


def _port_of(url: str, name: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise SettingsError(f"{name}={url!r} must name a port")
    return port
