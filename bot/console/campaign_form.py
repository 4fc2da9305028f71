"""The campaign form as the marketer typed it, and its conversion to and from a campaign.

Every field is kept as text, so that a refused form comes back exactly as it was typed; the
checking itself is `scheduler.campaigns.check_campaign`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.datastructures import FormData

from bot.crm.models import Campaign

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
                audience[key] = getattr(self, key).strip()
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


def _text(value: object) -> str:
    return "" if value is None else str(value)
