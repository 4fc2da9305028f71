"""Campaigns from the shell: `python -m scheduler.cli campaign {create,list,show,pause,resume,cancel}`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from sqlalchemy import select

from bot.crm.db import session_scope
from bot.crm.models import Campaign
from bot.settings import Settings
from scheduler.audience import InvalidAudience
from scheduler.campaigns import change_status, create_campaign, figures, preview

# The page's actions, by their CLI names (one mechanism: scheduler.campaigns.change_status).
ACTIONS = {"pause": "pause", "resume": "schedule", "cancel": "cancel"}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m scheduler.cli", description=__doc__.splitlines()[0])
    campaign = root.add_subparsers(dest="noun", required=True).add_parser(
        "campaign", help="marketing campaigns"
    )
    verbs = campaign.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="create and schedule a campaign")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--message", required=True, help="placeholders: {first_name} {last_name} {segment} {plan}"
    )
    create.add_argument(
        "--audience", default="{}", help='JSON, e.g. {"segments": ["MVC"], "channels": ["telegram"]}'
    )
    create.add_argument("--date", required=True, help="YYYY-MM-DD (customers' own; UTC with --zone utc)")
    create.add_argument("--time", default="10:00", help="HH:MM (local time, or UTC with --zone utc)")
    create.add_argument("--every", choices=("once", "day", "week"), default="once")
    create.add_argument(
        "--zone",
        choices=("local", "utc"),
        default="local",
        help="local: --time in each customer's own zone (default); utc: one moment for everyone",
    )
    create.add_argument("--button", action="append", default=[], help="a quick reply (at most two)")
    verbs.add_parser("list", help="all campaigns")
    for verb in ("show", *ACTIONS):
        verbs.add_parser(verb).add_argument("id", type=int)
    return root


def run(args: argparse.Namespace, settings: Settings) -> str:
    now = datetime.now(timezone.utc)
    with session_scope(settings.database_url) as session:
        if args.verb == "create":
            try:
                audience = json.loads(args.audience)
            except json.JSONDecodeError as error:
                raise InvalidAudience(f"--audience is not valid JSON: {error.msg}") from None
            created = create_campaign(
                session=session,
                name=args.name,
                message=args.message,
                audience=audience,
                schedule={"date": args.date, "time": args.time, "every": args.every, "zone": args.zone},
                buttons=args.button,
                now=now,
            )
            size, sample = preview(session=session, campaign=created, now=now)
            shown = sample or "(the audience is empty)"
            return f"campaign {created.id} scheduled for {size} customers; preview: {shown}"
        if args.verb == "list":
            rows = session.scalars(select(Campaign).order_by(Campaign.id)).all()
            return "\n".join(f"{c.id:>4}  {c.status.value:<10} {c.name}" for c in rows) or "no campaigns"
        campaign = session.get(Campaign, args.id)
        if campaign is None:
            raise InvalidAudience(f"there is no campaign {args.id}")
        if args.verb in ACTIONS:
            change_status(session=session, campaign=campaign, action=ACTIONS[args.verb], actor="cli", now=now)
            return f"campaign {campaign.id} is now {campaign.status.value}"
        size, sample = preview(session=session, campaign=campaign, now=now)
        numbers = figures(session=session, campaign_id=campaign.id)
        return "\n".join(
            [
                f"{campaign.id}: {campaign.name} ({campaign.status.value}), schedule {campaign.schedule}",
                f"audience now: {size}; preview: {sample}",
                "deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(numbers.items())),
            ]
        )


def main(argv: list[str] | None = None) -> None:
    from bot.bootstrap import bootstrap

    args = parser().parse_args(argv)
    settings = bootstrap(command=True)
    try:
        print(run(args, settings))
    except InvalidAudience as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
