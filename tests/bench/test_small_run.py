"""A small bench run through the real stack (action server, Rasa, gateway, Telegram stand-in), so
`make bench` cannot silently rot: every phase runs, every message is counted, nothing is lost or
doubled, and the table and the JSON carry every figure. Timing is never asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench.conversations import script_for
from bench.report import render, write_json
from bench.run import BenchConfig, run
from bot.ops.model import ensure_model
from bot.settings import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CONFIG = BenchConfig(
    population=40,
    levels=(1, 3),
    conversations_per_customer=1,
    min_conversations=2,
    fanout_workers=3,
    direct_triggers=8,
    heldout=False,  # `rasa test nlu` is make nlu-eval's; here it would only add two minutes
    parse_messages=12,
    database_customers=5,  # `make db` loads 500; the figure's shape needs only a few
    refresh_customers=200,  # the nightly refresh of 100,000; here its shape and its statement count
    backfill_orders=500,  # make bench imports 100,000; tests/bench/test_importing.py checks the figures
)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = ensure_model(PROJECT_ROOT / "models")
    lines: list[str] = []
    config = BenchConfig(**{**CONFIG.__dict__, "var_dir": tmp_path_factory.mktemp("bench"), "model": model})
    measured = run(config, echo=lines.append)
    assert lines, "the run says what it is doing"
    return measured


def turns_in(conversations: int) -> int:
    return sum(len(script_for(n).turns) for n in range(conversations))


def test_every_level_holds_its_conversations_through_the_gateway_and_straight_to_rasa(
    result: dict[str, Any],
) -> None:
    levels = result["chat"]["levels"]
    assert [level["customers"] for level in levels] == [1, 3]
    for level in levels:
        expected = turns_in(CONFIG.conversations(level["customers"]))
        assert level["conversations"] == CONFIG.conversations(level["customers"])
        for path in ("gateway", "rasa"):
            assert level[path]["outcomes"] == {"answered": expected}, path
            assert level[path]["count"] == expected and level[path]["p50_ms"] is not None
        assert set(level["ratio"]) == {"p50", "p95", "p99", "per_second"}
        for path in ("gateway", "rasa"):  # the scripts run custom actions, timed on their way
            assert 0 < level["actions"][path]["share"] < 1, path


def test_every_message_is_in_the_transcript_once_and_answered(result: dict[str, Any]) -> None:
    ledger = result["chat"]["ledger"]
    sent = sum(turns_in(CONFIG.conversations(level)) for level in CONFIG.levels)
    assert ledger["sent"] == ledger["stored"] == ledger["answered"] == sent
    assert ledger["replies_stored"] >= sent
    assert (ledger["losses"], ledger["duplicates"]) == (0, 0)


def test_the_campaign_reaches_every_consenting_customer_once(result: dict[str, Any]) -> None:
    fanout, ledger = result["fanout"], result["fanout"]["ledger"]
    assert fanout["audience"] == ledger["deliveries"] == CONFIG.population
    assert ledger["sent"] + ledger["skipped"] == CONFIG.population and ledger["open"] == 0
    assert ledger["sent"] == fanout["via_gateway"]["sent"] == ledger["messages"]
    assert sum(fanout["skipped_by_reason"].values()) == ledger["skipped"] > 0  # some opted out
    assert ledger["telegram_received"] == ledger["telegram_messages"] > 0
    assert ledger["telegram_messages"] + ledger["web_waiting"] == ledger["messages"]
    assert (ledger["losses"], ledger["duplicates"]) == (0, 0)
    assert fanout["direct"]["sent"] == CONFIG.direct_triggers and fanout["ratio"] is not None


def test_nlu_and_cost_figures(result: dict[str, Any]) -> None:
    assert result["nlu"]["heldout"] is None
    assert result["nlu"]["parse"]["messages"] == CONFIG.parse_messages
    assert result["nlu"]["parse"]["median_ms"] > 0
    cost = result["cost"]
    assert cost["cold_start_s"] >= cost["healthy_after_s"] > 0
    assert set(cost["peak_memory_mb"]) == {"actions", "rasa", "gateway"}
    assert all(mb > 0 for mb in cost["peak_memory_mb"].values())
    assert cost["model"].startswith("careloop-")


def test_the_fresh_clone_figure_has_every_part_and_measures_make_db_and_the_start(
    result: dict[str, Any],
) -> None:
    fresh = result["fresh_clone"]
    assert list(fresh["parts_s"]) == [
        "environment app",
        "environment rasa",
        "training",
        "database",
        "cold start",
    ]
    assert fresh["parts_s"]["cold start"] == result["cost"]["cold_start_s"]
    assert fresh["database"]["customers"] == 5 and fresh["parts_s"]["database"] > 0
    known = [seconds for seconds in fresh["parts_s"].values() if seconds is not None]
    assert fresh["total_s"] == round(sum(known), 1)
    assert fresh["missing"] == [name for name, seconds in fresh["parts_s"].items() if seconds is None]


def test_the_nightly_refresh_reaches_every_customer_in_far_fewer_statements(result: dict[str, Any]) -> None:
    refresh = result["refresh"]
    assert refresh["customers"] == CONFIG.refresh_customers and not refresh["stopped_by_budget"]
    assert [night["customers"] for night in refresh["nights"]] == [CONFIG.refresh_customers] * 2
    for night in refresh["nights"]:
        assert 0 < night["statements"] < CONFIG.refresh_customers
        assert night["seconds"] >= night["knowledge_seconds"] + night["drift_seconds"] - 0.2
    rows = [row for row in result["table"] if row[0] == "nightly refresh (sqlite)"]
    assert len(rows) == 5


def test_one_table_with_cores_and_commit_and_the_same_as_json(result: dict[str, Any], tmp_path: Path) -> None:
    machine = result["machine"]
    assert machine["cores"] == os.cpu_count() and len(machine["commit"]) == 40
    table = render(result)
    assert f"{machine['cores']} cores" in table and machine["commit"][:12] in table
    lines = table.splitlines()
    for area, figure, value in result["table"]:  # one line per row
        assert any(line.startswith(area) and figure in line and line.endswith(value) for line in lines)
    areas = {area for area, _, _ in result["table"]}
    assert {
        "chat, 1 at once",
        "chat, 3 at once",
        "chat, nothing lost",
        "proactive fan-out",
        "NLU",
        "cost",
        "fresh clone",
        "nightly refresh (sqlite)",
    } <= areas
    path = write_json(result, tmp_path)
    assert json.loads(path.read_text()) == json.loads((tmp_path / "latest.json").read_text())
    assert json.loads(path.read_text())["table"] == [list(row) for row in result["table"]]
