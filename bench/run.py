"""One bench run, phase by phase: NLU scores, the backfill and the nightly refresh at scale
(before the stack, so nothing competes with them), `make db`'s migrations and demo data into a
scratch CRM (for the fresh-clone figure), the bench CRM, cold start, parse times, chat load at each
concurrency through the gateway and straight to Rasa, the proactive fan-out, the loss audits, and
peak memory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench import chat_load, fanout, fresh_clone, importing, nlu, refresh
from bench.action_timer import ActionCall, action_share, own_overhead_ms
from bench.chat_load import LevelResult, WebChatCustomer
from bench.conversations import Script, script_for
from bench.ledger import audit_campaign, audit_chat
from bench.population import ChatCustomer, add_chat_customers, copy_crm, crm_template, prefer_telegram
from bench.report import table_rows
from bench.stack import Stack, bench_settings, running_stack, telegram_standin
from bench.stats import latency_summary, ratio
from bot.bootstrap import load_settings
from bot.crm.db import make_engine
from bot.crm.demo import demo_day
from bot.crm.models import Delivery, DeliveryStatus
from bot.ops.model import ensure_model, training_record
from bot.settings import PROJECT_ROOT, Settings

Echo = Callable[[str], None]
T = TypeVar("T")
WRAP_UP_SECONDS = 90  # after the fan-out: audits, memory, stopping the services, the report


def echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchConfig:
    population: int = 10_000  # demo customers in the bench CRM (the campaign's audience)
    levels: tuple[int, ...] = (1, 10, 50)  # customers talking at once
    conversations_per_customer: int = 2
    min_conversations: int = 12  # per level and path, so one customer still gives enough turns
    fanout_workers: int = 8
    direct_triggers: int = 1_000  # trigger_intent calls straight at Rasa, for the ratio
    heldout: bool = True  # run `rasa test nlu` on the held-out set
    backfill_orders: int = importing.ORDERS  # orders in the importer's CSV; 0: no backfill figures
    refresh_customers: int = refresh.CUSTOMERS  # in the nightly refresh's CRM; 0: no refresh figures
    database_setup: bool = True  # time `make db` (migrations, demo data) for the fresh-clone figure
    database_customers: int = fresh_clone.DEMO_CUSTOMERS  # demo customers it loads, as `make db` does
    parse_messages: int | None = None  # held-out messages to time /model/parse on (None: all)
    answer_timeout: float = 60.0
    budget_minutes: float = 20.0  # the fan-out stops starting sends when the run would exceed it
    rounds: int = 2  # each chat level alternates gateway and Rasa-only rounds
    fanout_rounds: int = 10  # the campaign and the direct calls alternate in this many rounds
    var_dir: Path = PROJECT_ROOT / "var" / "bench"
    model: Path | None = None  # default: the current model (trained if the data changed)

    def conversations(self, customers: int) -> int:
        return max(self.min_conversations, customers * self.conversations_per_customer)


@dataclass
class Prepared:
    campaign: fanout.Campaigned
    telegram_preferred: int
    warmup: ChatCustomer
    chat: dict[int, tuple[list[ChatCustomer], list[ChatCustomer]]] = field(default_factory=dict)


def run(config: BenchConfig, echo: Echo = echo_stderr) -> dict[str, Any]:
    """Measure everything; return the result (with its table rows)."""
    clock, started_at, load_start = time.monotonic(), _utc_stamp(), _load()
    model = config.model or ensure_model(load_settings().models_dir)
    heldout = None
    if config.heldout:
        echo("NLU: scoring the held-out set (rasa test nlu) ...")
        heldout = nlu.heldout_scores(model)
    backfill = None
    if config.backfill_orders:
        echo(f"backfill: importing {config.backfill_orders:,} orders from CSV, then the API's batches ...")
        backfill = importing.backfill(config.var_dir / "import", orders=config.backfill_orders)
    nightly = None
    if config.refresh_customers:
        echo(f"nightly refresh: {config.refresh_customers:,} customers, two nights ...")
        nightly = refresh.refresh(config.var_dir / "refresh", customers=config.refresh_customers)
    database = None
    if config.database_setup:
        echo(f"fresh clone: timing `make db` ({config.database_customers} demo customers) ...")
        database = fresh_clone.time_database_setup(config.var_dir / "fresh", config.database_customers)
    run_dir = config.var_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    echo(f"CRM: {config.population} demo customers (built once, then copied) ...")
    template = crm_template(config.var_dir, config.population, demo_day(datetime.now(timezone.utc)))
    copy_crm(template, run_dir)
    with telegram_standin() as telegram:
        settings = bench_settings(run_dir, telegram.url)
        prepared = prepare_crm(settings, config)
        echo("starting the action server, Rasa and the gateway ...")
        with running_stack(settings, model, telegram) as stack:
            deadline = clock + config.budget_minutes * 60 - WRAP_UP_SECONDS
            measured = measure(stack, config, prepared, deadline, echo)
    result = {
        "machine": {
            "cores": os.cpu_count(),
            **_commit(),
            "started_at": started_at,
            "seconds": round(time.monotonic() - clock, 1),
            "load_average_start": load_start,
            "load_average_end": _load(),
        },
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        **measured,
        "nlu": {"heldout": heldout, "parse": measured.pop("parse")},
        "backfill": backfill,
        "refresh": nightly,
    }
    result["cost"]["training"] = training_record(model)
    result["cost"]["model"] = model.name
    result["fresh_clone"] = (
        fresh_clone.fresh_clone(
            environments={name: fresh_clone.environment_record(name) for name in fresh_clone.ENVIRONMENTS},
            training=result["cost"]["training"],
            database=database,
            cold_start_s=result["cost"]["cold_start_s"],
        )
        if database is not None
        else None
    )
    result["table"] = table_rows(result)
    return result


@contextmanager
def crm(settings: Settings) -> Iterator[Session]:
    """A session on the bench CRM, its engine disposed after."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def prepare_crm(settings: Settings, config: BenchConfig) -> Prepared:
    """Queue the campaign for the demo population, then add the customers who will chat."""
    with crm(settings) as session:
        telegram_preferred = prefer_telegram(session=session)
        campaign = fanout.queue_campaign(session=session, now=datetime.now(timezone.utc))
        number = 1
        warmup = add_chat_customers(session=session, count=1, secret_key=settings.secret_key, first=number)[0]
        prepared = Prepared(campaign, telegram_preferred, warmup)
        number += 1
        for level in config.levels:
            count = config.conversations(level)
            both = add_chat_customers(
                session=session, count=2 * count, secret_key=settings.secret_key, first=number
            )
            number += 2 * count
            prepared.chat[level] = (both[:count], both[count:])
        session.commit()
    return prepared


def measure(
    stack: Stack, config: BenchConfig, prepared: Prepared, deadline: float, echo: Echo
) -> dict[str, Any]:
    settings = stack.settings
    cold_start = asyncio.run(first_answer(stack, prepared.warmup, config.answer_timeout))
    echo(f"first answer {cold_start:.1f} s after start; timing /model/parse ...")
    messages = nlu.heldout_messages()[: config.parse_messages]
    parse = nlu.parse_times(settings.rasa_url, settings.rasa_token, messages)
    levels = asyncio.run(chat_levels(stack, config, prepared, echo))
    calls = stack.actions.snapshot()
    with crm(settings) as session:
        sent = {k: v for level in levels for k, v in level[0].sent.items()}
        received = {k: v for level in levels for k, v in level[0].received.items()}
        chat_ledger = audit_chat(session=session, sent=sent, received=received)
    proactive = fan_out(stack, config, prepared, deadline, echo)
    return {
        "chat": {
            "levels": [_level_figures(gateway, rasa, calls) for gateway, rasa in levels],
            "ledger": chat_ledger.as_dict(),
            "action_timer_overhead_ms": own_overhead_ms(calls),
        },
        "fanout": proactive,
        "parse": parse,
        "cost": {
            "cold_start_s": round(cold_start, 1),
            "healthy_after_s": round(stack.healthy_after, 1),
            "peak_memory_mb": stack.peak_memory_mb(),
        },
    }


async def first_answer(stack: Stack, customer: ChatCustomer, timeout: float) -> float:
    """Seconds from starting the services until a customer's first message was answered."""
    async with WebChatCustomer(_ws_url(stack.settings), customer, timeout) as visitor:
        turn = await visitor.say("hello", "warm-up")
    if turn.outcome != "answered" or turn.done_at is None:
        raise RuntimeError(f"the stack did not answer the first message ({turn.outcome})")
    return turn.done_at - stack.started_at


async def chat_levels(
    stack: Stack, config: BenchConfig, prepared: Prepared, echo: Echo
) -> list[tuple[LevelResult, LevelResult]]:
    settings = stack.settings
    results = []
    async with httpx.AsyncClient(timeout=config.answer_timeout) as client:
        rasa_talk = chat_load.rasa_talk(client, settings.rasa_url, settings.rasa_channel_secret)
        for level in config.levels:
            through_gateway, straight = prepared.chat[level]
            echo(f"chat: {level} customers at once, {len(through_gateway)} conversations per path ...")
            log: dict[str, tuple[list[str], list[int]]] = {}
            talk = chat_load.gateway_talk(_ws_url(settings), config.answer_timeout, log)
            gateway_rounds, rasa_rounds = [], []
            # Alternating rounds: other work on the machine weighs on both paths alike.
            for mine, theirs in zip(
                _split(_scripted(through_gateway), config.rounds),
                _split(_scripted(straight), config.rounds),
                strict=True,
            ):
                gateway_rounds.append(await chat_load.run_level("gateway", mine, level, talk))
                rasa_rounds.append(await chat_load.run_level("rasa", theirs, level, rasa_talk))
            gateway = chat_load.combined(gateway_rounds)
            gateway.sent = {sender: sent for sender, (sent, _) in log.items()}
            gateway.received = {sender: received for sender, (_, received) in log.items()}
            results.append((gateway, chat_load.combined(rasa_rounds)))
    return results


def fan_out(
    stack: Stack, config: BenchConfig, prepared: Prepared, deadline: float, echo: Echo
) -> dict[str, Any]:
    settings = stack.settings
    campaign_id = prepared.campaign.campaign_id
    with crm(settings) as session:
        queued = fanout.campaign_deliveries(session=session, campaign_id=campaign_id)
    sample = [entities for _, entities in queued[: config.direct_triggers]]
    echo(
        f"fan-out: {len(queued)} campaign deliveries through the policy gate and the gateway,"
        f" {len(sample)} trigger_intent calls straight at Rasa; {config.fanout_rounds} alternating rounds ..."
    )
    via_rounds, direct_rounds = [], []
    for ours, theirs in zip(
        _split(queued, config.fanout_rounds), _split(sample, config.fanout_rounds), strict=True
    ):
        via_rounds.append(
            fanout.send_campaign(
                database_url=settings.database_url,
                gateway_url=settings.gateway_url,
                token=settings.internal_api_token,
                weekly_cap=settings.outreach_weekly_cap,
                delivery_ids=[delivery_id for delivery_id, _ in ours],
                concurrency=config.fanout_workers,
                deadline=deadline,
            )
        )
        direct_rounds.append(
            fanout.trigger_directly(
                rasa_url=settings.rasa_url,
                token=settings.rasa_token,
                entities=theirs,
                concurrency=config.fanout_workers,
                deadline=deadline,
            )
        )
    via, direct = fanout.combined(via_rounds), fanout.combined(direct_rounds)
    with stack.telegram.lock:
        telegram_sent = list(stack.telegram.sent)
    with crm(settings) as session:
        ledger = audit_campaign(session=session, campaign_id=campaign_id, telegram_sent=telegram_sent)
        skipped = _skip_reasons(session, campaign_id)
    via_figures, direct_figures = _send_figures(via), _send_figures(direct)
    return {
        "audience": prepared.campaign.deliveries,
        "queue_seconds": round(prepared.campaign.seconds, 1),
        "telegram_preferred": prepared.telegram_preferred,
        "via_gateway": via_figures,
        "direct": direct_figures,
        "ratio": ratio(via_figures["per_second"], direct_figures["per_second"]),
        "skipped_by_reason": skipped,
        "ledger": ledger.as_dict(),
    }


def _send_figures(run: fanout.SendRun) -> dict[str, Any]:
    per_second = run.sent / run.seconds if run.seconds > 0 else None
    return {
        "concurrency": run.concurrency,
        "sent": run.sent,
        "seconds": round(run.seconds, 1),
        "per_second": None if per_second is None else round(per_second, 2),
        "outcomes": dict(run.outcomes),
    }


def _skip_reasons(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.skip_reason, func.count(Delivery.id))
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SKIPPED)
        .group_by(Delivery.skip_reason)
    )
    return {str(reason): int(count) for reason, count in rows}


def _level_figures(gateway: LevelResult, rasa: LevelResult, calls: Sequence[ActionCall]) -> dict[str, Any]:
    through = {
        **latency_summary(gateway.latencies(), gateway.seconds),
        "outcomes": gateway.outcomes(),
        "holding_first": sum(1 for turn in gateway.turns if turn.holding),
    }
    straight = {**latency_summary(rasa.latencies(), rasa.seconds), "outcomes": rasa.outcomes()}
    return {
        "customers": gateway.customers,
        "conversations": len(gateway.sent),
        "gateway": through,
        "rasa": straight,
        "ratio": {
            "p50": ratio(through["p50_ms"], straight["p50_ms"]),
            "p95": ratio(through["p95_ms"], straight["p95_ms"]),
            "p99": ratio(through["p99_ms"], straight["p99_ms"]),
            "per_second": ratio(through["per_second"], straight["per_second"]),
        },
        "actions": {"gateway": action_share(gateway.turns, calls), "rasa": action_share(rasa.turns, calls)},
    }


def _split(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` in `parts` consecutive slices of (nearly) equal length."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        slices.append(list(items[start:end]))
        start = end
    return slices


def _scripted(customers: Sequence[ChatCustomer]) -> list[tuple[ChatCustomer, Script]]:
    return [(customer, script_for(index)) for index, customer in enumerate(customers)]


def _ws_url(settings: Settings) -> str:
    return settings.gateway_url.replace("http", "ws", 1) + "/webchat/ws"


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
