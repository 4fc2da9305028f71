"""NLU figures: the held-out scores from `make nlu-eval`'s code, and how long Rasa takes to parse
one message (`POST /model/parse` on the running server, one message at a time)."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

from bench.stats import percentile
from bot.ops import nlu_eval

ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")  # [text](entity) -> text


def heldout_scores(model: Path) -> dict[str, Any]:
    """Intent macro-F1 and out-of-scope recall on the held-out set (`rasa test nlu`)."""
    with tempfile.TemporaryDirectory(prefix="careloop-bench-nlu-") as out_dir:
        started = time.monotonic()
        nlu_eval.run_rasa_test(model, Path(out_dir))
        figures = nlu_eval.summarise(Path(out_dir), model)
    return {
        "intent_macro_f1": figures["intent_macro_f1"],
        "out_of_scope_recall": figures["out_of_scope_recall"],
        "heldout": figures["heldout"],
        "messages": sum(v["support"] for v in figures["intents"].values()),
        "seconds": round(time.monotonic() - started, 1),
    }


def heldout_messages(path: Path = nlu_eval.HELDOUT) -> list[str]:
    """Every held-out example as a customer would type it (entity annotations removed)."""
    content = YAML(typ="safe").load(path.read_text()) or {}
    messages = []
    for item in content.get("nlu", []):
        for line in str(item.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                messages.append(ANNOTATION.sub(r"\1", line[2:]))
    return messages


def parse_times(rasa_url: str, token: str, messages: list[str]) -> dict[str, Any]:
    """Median and p95 time of `/model/parse` per message, sent one after another."""
    durations = []
    with httpx.Client(base_url=rasa_url, params={"token": token}, timeout=30) as client:
        client.post("/model/parse", json={"text": "warm up"}).raise_for_status()
        for text in messages:
            started = time.perf_counter()
            client.post("/model/parse", json={"text": text}).raise_for_status()
            durations.append(time.perf_counter() - started)
    median, p95 = percentile(durations, 50), percentile(durations, 95)
    return {
        "messages": len(durations),
        "median_ms": None if median is None else round(median * 1000, 1),
        "p95_ms": None if p95 is None else round(p95 * 1000, 1),
    }
