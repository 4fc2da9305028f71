"""The campaign form as the marketer typed it, and its conversion to and from a campaign.

Every field is kept as text, so that a refused form comes back exactly as it was typed. `problems`
finds every mistake at once, each beside its field in a marketer's words (cross-field checks
included); `scheduler.campaigns.check_campaign` stays the final word for the page and the CLI.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from starlette.datastructures import FormData

from bot.crm.models import Campaign, Channel, Segment, Temperament
from bot.gateway.limits import reads_as_intent
from scheduler.audience import PLACEHOLDERS, InvalidAudience
from scheduler.campaigns.draft import MAX_BUTTONS
from scheduler.campaigns.schedule import Schedule, check_not_past

MULTI = ("segments", "temperaments", "channels")  # fields with several values (checkboxes)


@dataclass
class CampaignForm:
    """What the form holds, as text, so that a refused form comes back exactly as it was typed."""

    name: str = ""
    message: str = ""
    segments: list[str] = field(default_factory=list)
    temperaments: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    tags: str = ""
    last_contact_days_min: str = ""
    last_contact_days_max: str = ""
    churn_risk_min: str = ""
    has_open_complaint: str = ""  # "", "yes" or "no"
    date: str = ""
    time: str = "10:00"
    every: str = "once"
    zone: str = "local"  # "local": each customer's own time; "utc": one moment for everyone
    button_1: str = ""
    button_2: str = ""
    markup_ok: str = ""  # "yes": the marketer saw the markup warning and wants the text as written

    @classmethod
    def read(cls, form: FormData) -> CampaignForm:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in MULTI:
                values[f.name] = [str(v) for v in form.getlist(f.name)]
            else:
                values[f.name] = str(form.get(f.name, f.default)).replace("\r\n", "\n")  # absent: default
        return cls(**values)

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignForm:
        audience, schedule = campaign.audience, campaign.schedule
        labels = [b["title"] for b in campaign.buttons] + ["", ""]
        complaint = audience.get("has_open_complaint")
        return cls(
            name=campaign.name,
            message=campaign.message,
            segments=list(audience.get("segments", [])),
            temperaments=list(audience.get("temperaments", [])),
            channels=list(audience.get("channels", [])),
            tags=", ".join(audience.get("tags", [])),
            last_contact_days_min=_text(audience.get("last_contact_days_min")),
            last_contact_days_max=_text(audience.get("last_contact_days_max")),
            churn_risk_min=_text(audience.get("churn_risk_min")),
            has_open_complaint="" if complaint is None else ("yes" if complaint else "no"),
            date=str(schedule.get("date", "")),
            time=str(schedule.get("time", "10:00")),
            every=str(schedule.get("every", "once")),
            zone=str(schedule.get("zone", "local")),
            button_1=labels[0],
            button_2=labels[1],
        )

    def audience(self) -> dict[str, Any]:
        """The audience filter as `scheduler.audience.Audience.parse` takes it (empty fields left out)."""
        audience: dict[str, Any] = {key: getattr(self, key) for key in MULTI if getattr(self, key)}
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        if tags:
            audience["tags"] = tags
        for key in ("last_contact_days_min", "last_contact_days_max", "churn_risk_min"):
            if getattr(self, key).strip():
                audience[key] = getattr(self, key).strip().replace(",", ".")  # 0,6 is how many write 0.6
        if self.has_open_complaint in ("yes", "no"):
            audience["has_open_complaint"] = self.has_open_complaint == "yes"
        return audience

    def schedule(self) -> dict[str, str]:
        return {"date": self.date.strip(), "time": self.time.strip(), "every": self.every, "zone": self.zone}

    def sending_now(self, now: datetime) -> CampaignForm:
        """The same campaign, once, to everyone at the next whole minute (UTC): "Send now".
        Quiet hours still hold it for customers for whom it is night."""
        at = (now.astimezone(timezone.utc) + timedelta(minutes=1)).replace(second=0, microsecond=0)
        return replace(self, date=at.date().isoformat(), time=at.strftime("%H:%M"), every="once", zone="utc")

    def buttons(self) -> list[str]:
        return [self.button_1, self.button_2]

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "audience": self.audience(),
            "schedule": self.schedule(),
            "buttons": self.buttons(),
        }

    def problems(self, now: datetime | None = None) -> dict[str, str]:
        """Every mistake in the form at once: {field name: what to fix, in a marketer's words}."""
        found: dict[str, str] = {}
        if not self.name.strip():
            found["name"] = "Give the campaign a name (only marketers see it)."
        elif len(self.name.strip()) > 120:
            found["name"] = "The name is too long: at most 120 characters."
        message = _message_problem(self.message)
        if message:
            found["message"] = message
        for key, allowed, what in (
            ("segments", [s.value for s in Segment], "segment"),
            ("temperaments", [t.value for t in Temperament], "temperament"),
            ("channels", [c.value for c in Channel], "channel"),
        ):
            wrong = [v for v in getattr(self, key) if v not in allowed]
            if wrong:
                found[key] = f"Choose a {what} from the list ({', '.join(wrong)} is not one)."
        days = {}
        for key in ("last_contact_days_min", "last_contact_days_max"):
            days[key] = _whole_days(getattr(self, key))
            if days[key] is False:
                found[key] = "Write a whole number of days, 0 or more (e.g. 30), or leave it empty."
        low, high = days["last_contact_days_min"], days["last_contact_days_max"]
        if isinstance(low, int) and isinstance(high, int) and low > high:
            found["last_contact_days_max"] = (
                f"“At most {high} days ago” is less than “at least {low} days ago”: nobody can match both. "
                "Swap them or widen the range."
            )
        risk = self.churn_risk_min.strip().replace(",", ".")
        if risk and not _is_fraction(risk):
            found["churn_risk_min"] = (
                "Write a churn risk between 0 and 1 (e.g. 0.6 for 60 %), or leave it empty."
            )
        when = self._schedule_problem(now)
        if when:
            found[when[0]] = when[1]
        for key in ("button_1", "button_2"):
            text = getattr(self, key).strip()
            if len(text) > 40:
                found[key] = "A button label has at most 40 characters."
            elif reads_as_intent(text):  # a label is also the button's payload
                found[key] = (
                    "A button label may not begin with a slash (/): the chat would read it as a command, "
                    "not as the customer's answer. Write the answer in words, e.g. Tell me more."
                )
        if len([b for b in self.buttons() if b.strip()]) > MAX_BUTTONS:
            found["button_2"] = f"At most {MAX_BUTTONS} buttons."
        return found

    def _schedule_problem(self, now: datetime | None) -> tuple[str, str] | None:
        try:
            date.fromisoformat(self.date.strip())
        except ValueError:
            return "date", "Choose the day of the first send (YYYY-MM-DD)."
        if not re.fullmatch(r"\d{1,2}:\d{2}", self.time.strip()):
            return "time", "Choose the time of day to send (HH:MM, e.g. 10:00)."
        try:
            schedule = Schedule.parse(self.schedule())
        except InvalidAudience:
            return "time", "Choose the time of day to send (HH:MM, e.g. 10:00)."
        if now is not None:
            try:
                check_not_past(schedule, now)
            except InvalidAudience:
                return "date", "This moment has already passed everywhere: choose a later day or time."
        return None

    def markup(self) -> list[str]:
        """Markup in the message that customers would see literally (chats show plain text)."""
        found = []
        if re.search(r"</?[a-zA-Z][^>]*>", self.message):
            found.append("HTML tags such as <b> or <br>")
        if re.search(r"&[a-zA-Z]+;|&#\d+;", self.message):
            found.append("HTML entities such as &amp;")
        if re.search(r"\*\*[^*]+\*\*|__[^_]+__|\[[^\]]+\]\([^)]+\)", self.message):
            found.append("Markdown such as **bold** or [a link](…)")
        return found


def _message_problem(message: str) -> str | None:
    if not message.strip():
        return "Write the message customers will read."
    if len(message) > 1000:
        return f"The message is {len(message):,} characters long: at most 1,000."
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}
    except ValueError:
        return "A placeholder is not closed: write it as {first_name}, with both braces."
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        usable = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        named = ", ".join("{" + u + "}" for u in sorted(unknown))
        return f"{named} is not a placeholder we can fill: use {usable}."
    return None


def _whole_days(text: str) -> int | None | bool:
    """The number of days, None when empty, False when not a whole number of 0 or more."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) < 6 else False


def _is_fraction(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False


def _text(value: object) -> str:
    return "" if value is None else str(value)
