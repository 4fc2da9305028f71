"""One table of the figures (printed), and the whole result as JSON under var/bench/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]


def table_rows(result: dict[str, Any]) -> list[Row]:
    """The figures a reader needs, as (area, figure, value) rows."""
    return [*_chat_rows(result["chat"]), *_fanout_rows(result["fanout"]), *_nlu_rows(result["nlu"])] + (
        [
            *import_rows(result.get("backfill")),
            *refresh_rows(result.get("refresh")),
            *_cost_rows(result["cost"]),
        ]
        + fresh_clone_rows(result.get("fresh_clone"))
    )


def import_rows(backfill: dict[str, Any] | None) -> list[Row]:
    """The importer's and the API's write speed (bench/importing.py)."""
    if backfill is None:
        return [("backfill", "import and API speed", "not measured (--backfill-orders 0)")]
    area = f"backfill ({backfill['database']})"
    imported, api = backfill["import"], backfill["api"]
    rerun = imported["rerun_records"]
    stopped = ", stopped by the budget" if imported["stopped_by_budget"] else ""
    return [
        (
            area,
            f"bulk import, orders/s (CSV: {imported['orders']:,} orders, {imported['order_rows']:,} rows)",
            f"{_num(imported['orders_per_second'])} ({imported['imported']:,} in"
            f" {_num(imported['seconds'])} s, {_num(imported['cpu_seconds'])} CPU-s{stopped})",
        ),
        (
            area,
            "the same file again: unchanged / stale / other",
            f"{rerun.get('unchanged', 0):,} / {rerun.get('stale', 0):,}"
            f" / {sum(n for k, n in rerun.items() if k not in ('unchanged', 'stale')):,}"
            f" ({_num(imported['rerun_seconds'])} s)",
        ),
        (
            area,
            "orders created / stored / rows rejected (nothing lost or doubled)",
            f"{imported['imported']:,} / {imported['stored_orders']:,} / {imported['rejected']:,}",
        ),
        (
            area,
            f"API batch upserts/s (customers, then an order each; {api['batch']:,} a request)",
            f"{_num(api['per_second'])} ({api['sent']:,} of {api['records']:,} in {_num(api['seconds'])} s,"
            f" {_num(api['cpu_seconds'])} CPU-s), {api['failed']} failed",
        ),
    ]


def refresh_rows(refresh: dict[str, Any] | None) -> list[Row]:
    """The nightly refresh of every customer, as the scheduler runs it (bench/refresh.py)."""
    area = "nightly refresh"
    if refresh is None:
        return [
            (area, "segments, churn risk and drift for everybody", "not measured (--refresh-customers 0)")
        ]
    area = f"nightly refresh ({refresh['database']})"
    rows: list[Row] = [
        (
            area,
            "the CRM: customers / orders (generated in)",
            f"{refresh['customers']:,} / {refresh['orders']:,} ({_num(refresh['generation_seconds'])} s)",
        )
    ]
    for number, night in enumerate(refresh["nights"]):
        label = "first night (every first segment is history)" if number == 0 else "next night"
        stopped = (
            f", stopped by the {_num(refresh['budget_seconds'], 0)}-s budget"
            if night["stopped_by_budget"]
            else ""
        )
        rows.append(
            (
                area,
                f"{label}: segments + churn / drift / commit",
                f"{_num(night['seconds'])} s = {_num(night['knowledge_seconds'])}"
                f" + {_num(night['drift_seconds'])} + {_num(night['commit_seconds'])} s,"
                f" {_num(night['customers_per_second'], 0)} customers/s"
                f" ({night['customers']:,} refreshed, {night['moved']:,} moved){stopped}",
            )
        )
        drift = night["drift"]
        began = sum(drift.get(f"drift_{action}", 0) for action in ("task", "checkin", "not_chased"))
        rows.append(
            (
                area,
                f"{label}: SQL statements (segments + churn / drift); drift began / ended",
                f"{night['statements']:,} ({night['statements_knowledge']:,}"
                f" / {night['statements_drift']:,});"
                f" {began:,} / {drift.get('came_back', 0) + drift.get('lapsed', 0):,}",
            )
        )
    return rows


def _chat_rows(chat: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for level in chat["levels"]:
        area = f"chat, {level['customers']} at once"
        for path, label in (("gateway", "whole stack (web chat)"), ("rasa", "Rasa channel only")):
            figures = level[path]
            value = _latencies(figures) + f", {_num(figures['per_second'])} msg/s"
            unanswered = sum(n for outcome, n in figures["outcomes"].items() if outcome != "answered")
            if figures.get("holding_first"):
                value += f", {figures['holding_first']} got the holding answer first"
            if unanswered:
                value += f", {unanswered} not answered in time ({_outcomes(figures['outcomes'])})"
            rows.append((area, f"{label} p50/p95/p99", value))
        ratio = level["ratio"]
        rows.append(
            (
                area,
                "whole stack ÷ Rasa only",
                f"p50 ×{_num(ratio['p50'])}, p95 ×{_num(ratio['p95'])}, msg/s ×{_num(ratio['per_second'])}",
            )
        )
        actions = level["actions"]
        rows.append(
            (
                area,
                "action server's share of the time (whole stack / Rasa only)",
                f"{_percent(actions['gateway']['share'])} / {_percent(actions['rasa']['share'])}"
                f" ({_num(actions['rasa']['mean_ms_per_turn'], 0)} ms per message)",
            )
        )
    ledger = chat["ledger"]
    rows.append(
        (
            "chat, nothing lost",
            "sent / in transcript / answered / holding only",
            f"{ledger['sent']} / {ledger['stored']} / {ledger['answered']} / {ledger['holding_only']}",
        )
    )
    rows.append(("chat, nothing lost", "losses / duplicates", f"{ledger['losses']} / {ledger['duplicates']}"))
    return rows


def _fanout_rows(fanout: dict[str, Any]) -> list[Row]:
    ledger, via, direct = fanout["ledger"], fanout["via_gateway"], fanout["direct"]
    workers = f"{via['concurrency']} workers"
    return [
        (
            "proactive fan-out",
            f"campaign to {fanout['audience']} customers: sent / skipped by the gate / open",
            f"{ledger['sent']} / {ledger['skipped']} / {ledger['open']}",
        ),
        ("proactive fan-out", "skipped, by reason", _reasons(fanout["skipped_by_reason"])),
        (
            "proactive fan-out",
            f"deliveries/s through gate, gateway, trigger_intent ({workers})",
            f"{_num(via['per_second'])} ({via['sent']} in {_num(via['seconds'])} s)",
        ),
        (
            "proactive fan-out",
            f"trigger_intent/s straight at Rasa ({direct['concurrency']} workers)",
            f"{_num(direct['per_second'])} ({direct['sent']} in {_num(direct['seconds'])} s)",
        ),
        ("proactive fan-out", "through the stack ÷ straight", f"×{_num(fanout['ratio'])}"),
        (
            "proactive fan-out",
            "to Telegram stand-in / waiting for web visitor",
            f"{ledger['telegram_received']} / {ledger['web_waiting']}",
        ),
        ("proactive fan-out", "losses / duplicates", f"{ledger['losses']} / {ledger['duplicates']}"),
    ]


def _nlu_rows(nlu: dict[str, Any]) -> list[Row]:
    heldout, parse = nlu["heldout"], nlu["parse"]
    rows: list[Row] = []
    if heldout is None:
        rows.append(("NLU", "held-out scores", "not measured (--no-heldout)"))
    else:
        rows.append(
            (
                "NLU",
                f"intent macro-F1 ({heldout['messages']} held-out messages)",
                _num(heldout["intent_macro_f1"], 3),
            )
        )
        rows.append(("NLU", "out-of-scope recall", _num(heldout["out_of_scope_recall"], 3)))
    rows.append(
        (
            "NLU",
            f"parse time per message, median (p95), {parse['messages']} messages",
            f"{_num(parse['median_ms'])} ms ({_num(parse['p95_ms'])} ms)",
        )
    )
    return rows


def _cost_rows(cost: dict[str, Any]) -> list[Row]:
    training = cost["training"]
    if training is None:
        trained = "not recorded (this machine reused a model trained before records were kept)"
    else:
        cpu = training.get("cpu_seconds")
        trained = (
            f"{_num(training['seconds'], 0)} s, full `rasa train` on {training['trained_at'][:10]}"
            f" ({training['cores']} cores, load {training.get('load_average_1m', '?')}"
            f"{'' if cpu is None else f', {_num(cpu, 0)} CPU-seconds'})"
        )
    memory = ", ".join(f"{name} {_num(mb, 0)} MB" for name, mb in cost["peak_memory_mb"].items())
    return [
        ("cost", "training time", trained),
        (
            "cost",
            "cold start to first answer",
            f"{_num(cost['cold_start_s'])} s (healthy after {_num(cost['healthy_after_s'])} s)",
        ),
        ("cost", "a changed model to its first answer (training + cold start)", _first_answer(cost)),
        ("cost", "peak memory (VmHWM)", memory),
    ]


def _first_answer(cost: dict[str, Any]) -> str:
    """What a newcomer waits after `make run` once environments exist: training, then the start."""
    training = cost["training"]
    if training is None or cost["cold_start_s"] is None:
        return "not measured (no training record on this machine)"
    return f"{_num((training['seconds'] + cost['cold_start_s']) / 60)} min"


def fresh_clone_rows(fresh: dict[str, Any] | None) -> list[Row]:
    """A fresh clone to its first answer: each part (recorded or measured), then their sum."""
    area = "fresh clone"
    if fresh is None:
        return [(area, "fresh clone to first answer", "not measured (--no-database-setup)")]
    parts, database = fresh["parts_s"], fresh["database"]
    environments = ", ".join(
        f"{name.removeprefix('environment ')} {_seconds(seconds)}"
        for name, seconds in parts.items()
        if name.startswith("environment ")
    )
    total = f"{_num(fresh['total_s'] / 60)} min"
    if fresh["missing"]:
        total = f"at least {total}: {', '.join(fresh['missing'])} not known"
    return [
        (area, "environments, created by tools/venv.sh (recorded)", environments),
        (area, "training, full `rasa train` (recorded)", _seconds(parts["training"])),
        (
            area,
            "migrations + demo data, as `make db` (measured)"
            + (f", {database['customers']} customers" if database else ""),
            f"{_num(database['migrate_s'])} s + {_num(database['demo_s'])} s" if database else _seconds(None),
        ),
        (area, "cold start to first answer (measured)", _seconds(parts["cold start"])),
        (
            area,
            "fresh clone to first answer (sum)",
            f"{total} (target ≤ {_num(fresh['target_minutes'], 0)} min)",
        ),
    ]


def _seconds(value: float | None) -> str:
    return "not recorded on this machine" if value is None else f"{_num(value, 0)} s"


def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    dirty = " (uncommitted changes)" if machine["dirty"] else ""
    header = (
        f"CareLoop bench — commit {machine['commit'][:12]}{dirty}"
        f" — {machine['cores']} cores — {machine['started_at']} — took {_num(machine['seconds'] / 60)} min"
        f" — load average {machine['load_average_start']} → {machine['load_average_end']}"
    )
    rows = [("area", "figure", "value"), *[tuple(r) for r in result["table"]]]
    widths = [max(len(str(r[i])) for r in rows) for i in range(2)]
    lines = [header, ""]
    for number, (area, figure, value) in enumerate(rows):
        lines.append(f"{area:<{widths[0]}}  {figure:<{widths[1]}}  {value}")
        if number == 0:
            lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 5}")
    return "\n".join(lines)


def write_json(result: dict[str, Any], directory: Path) -> Path:
    """var/bench/bench-<UTC time>.json, and the same as var/bench/latest.json."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result["machine"]["started_at"].replace(":", "").replace("-", "")
    path = directory / f"bench-{stamp}.json"
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def _latencies(figures: dict[str, Any]) -> str:
    return f"{_num(figures['p50_ms'], 0)} / {_num(figures['p95_ms'], 0)} / {_num(figures['p99_ms'], 0)} ms"


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(outcomes.items()) if name != "answered")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "none"


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"
