"""The scheduler's jobs, referenced by APScheduler as `scheduler.jobs:<name>`; they take no objects."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import knowledge, retention, webhooks
from bot.crm.clock import utcnow
from bot.crm.db import engine_for
from bot.crm.models import Campaign, CampaignStatus
from bot.settings import Settings
from scheduler import campaigns, checkins, sla
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from scheduler.webhooks import WebhookSender, http_post

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    factory: sessionmaker[Session]
    sender: Sender
    holidays: dict[str, str]


OPTIONS = {"stale_after_seconds": 300.0}  # set by the service's command line before the first job


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Built on first use in the scheduler process (never at import)."""
    from bot.bootstrap import load_settings

    settings = load_settings()
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    policy = Policy.parse(settings.outreach_quiet_hours, settings.outreach_weekly_cap)
    gateway = HttpGateway(settings.gateway_url, settings.internal_api_token)
    sender = Sender(
        factory,
        gateway,
        policy,
        clock=utcnow,
        rate_per_second=settings.outreach_rate_per_second,
        stale_after=timedelta(seconds=OPTIONS["stale_after_seconds"]),
    )
    return Runtime(settings, factory, sender, checkins.parse_holidays(settings.outreach_holidays))


def sweep_once(rt: Runtime, now: datetime) -> dict[str, int]:
    """Queue due check-ins, fan out due campaign occurrences, attribute replies, close finished campaigns."""
    with rt.factory.begin() as session:
        counts = checkins.sweep(session=session, now=now, holidays=rt.holidays)
        counts["campaign"] = 0
        for campaign in session.scalars(
            select(Campaign).where(Campaign.status.in_((CampaignStatus.SCHEDULED, CampaignStatus.SENDING)))
        ):
            for occurrence in campaigns.due_occurrences(campaign=campaign, now=now):
                counts["campaign"] += campaigns.fan_out(
                    session=session, campaign=campaign, occurrence=occurrence, now=now
                )
            campaigns.close_if_done(session=session, campaign=campaign)
        counts["replies"] = campaigns.attribute_replies(session=session, now=now)
        counts["cancellations_ended"] = retention.end_due_cancellations(session=session, now=now)
    return counts


def sweep() -> None:
    """APScheduler job: find who should hear from us."""
    counts = sweep_once(runtime(), utcnow())
    if any(counts.values()):
        log.info("sweep queued %s", counts)


def sla_clock() -> None:
    """APScheduler job: the SLA clock acts on open cases (warns, tells the customer, escalates)."""
    rt = runtime()
    steps = sla.walk(factory=rt.factory, now=utcnow(), rules=rt.settings.sla_rules(), policy=rt.sender.policy)
    if steps:
        log.info("sla clock %s", dict(steps))


def send_due() -> None:
    """APScheduler job: send what is due, through the policy gate and the gateway."""
    outcomes = runtime().sender.run_due()
    if outcomes:
        log.info("send %s", dict(outcomes))


@lru_cache(maxsize=1)
def webhook_sender() -> WebhookSender:
    """Built on first use, on the runtime's sessions."""
    rt = runtime()
    public_only = rt.settings.environment not in webhooks.LOCAL_ENVIRONMENTS
    return WebhookSender(rt.factory, http_post(public_only=public_only), clock=utcnow)


def send_webhooks() -> None:
    """APScheduler job: POST the webhook outbox, signed, in order per subscription, retrying for a day."""
    outcomes = webhook_sender().run_due()
    if outcomes:
        log.info("webhooks %s", dict(outcomes))


def refresh_customers_once(rt: Runtime, now: datetime) -> str:
    """Run the nightly refresh of every customer for `now`'s day, then catch who is drifting; say what
    it came to."""
    try:
        with rt.factory.begin() as session:
            run = knowledge.refresh_everybody(session=session, now=now)
            done = f"day {run.day}: {run.customers} customers, {run.changed} moved" if run else "already ran"
            if run:  # once a day, on the segments just refreshed
                found = checkins.drift(session=session, now=now)
                began = found["drift_task"] + found["drift_checkin"] + found["drift_not_chased"]
                done += f", {began} began drifting, {found['came_back']} came back, {found['lapsed']} lapsed"
    except IntegrityError:  # another scheduler process wrote tonight's run between our check and insert
        return "already ran"
    return done


def refresh_customers() -> None:
    """APScheduler job: every customer's segment recomputed from their orders, once a night."""
    log.info("nightly customer refresh %s", refresh_customers_once(runtime(), utcnow()))
