"""Read every example of an NLU file with a trained model and write what each classifier said.

Runs in the Rasa environment as a plain script, from the project root (config.yml's components
are imported from there):
`.venvs/rasa/bin/python bot/ops/nlu_votes.py MODEL NLU_FILE OUT_JSON`.
OUT_JSON gets one row per example: the text, its labelled intent, the blended intent and
confidence, the runner-up's confidence, and each classifier's own top intent (`intent_votes`).
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.getcwd())

from rasa.core.agent import Agent  # noqa: E402
from rasa.shared.nlu.training_data.loading import load_data  # noqa: E402


def row(text: str, gold: str, parsed: dict) -> dict:
    ranking = [r for r in parsed.get("intent_ranking") or [] if r["name"] != "nlu_fallback"]
    votes = parsed.get("intent_votes") or {}
    return {
        "text": text,
        "gold": gold.split("/", 1)[0],
        "intent": ranking[0]["name"] if ranking else None,
        "confidence": ranking[0]["confidence"] if ranking else 0.0,
        "runner_up": ranking[1]["confidence"] if len(ranking) > 1 else 0.0,
        "votes": {name: vote["name"] for name, vote in votes.items()},
    }


async def read_all(model: str, nlu_file: str) -> list[dict]:
    agent = Agent.load(model)
    examples = [(m.get("text"), m.get("intent")) for m in load_data(nlu_file).intent_examples]
    return [row(text, gold, await agent.parse_message(text)) for text, gold in examples]


if __name__ == "__main__":
    model_path, nlu_path, out_path = sys.argv[1:4]
    rows = asyncio.run(read_all(model_path, nlu_path))
    with open(out_path, "w") as out:
        json.dump(rows, out)
