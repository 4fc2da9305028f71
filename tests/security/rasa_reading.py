"""How Rasa 3.6 reads a text it is sent: as words, or as an intent with entities.

Two judges. `rasa_reads_as_intent` mirrors Rasa's rule in-process, written here from Rasa's source
(`UserMessage.__init__` strips the text, `YAMLStoryReader.unpack_regex_message` strips it again and
treats it as an intent when it then starts with `/`), independently of the gateway's own code.
`rasa_readings` asks Rasa itself: it runs `unpack_regex_message` in the rasa venv over a batch of
texts, in one subprocess.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venvs" / "rasa" / "bin" / "python"

# Rasa's path from the channel to the NLU graph, for each text; the readings go to a file because
# Rasa logs its warnings ("message.parsing.failed") to stdout.
_READ_IN_RASA = """
import json, sys
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

readings = []
for text in json.load(open(sys.argv[1], encoding="utf-8")):
    message = Message(data={TEXT: UserMessage(text).text})
    read = YAMLStoryReader.unpack_regex_message(message)  # no domain: every intent name counts
    intent = read.get(INTENT)
    readings.append(None if intent is None else {"intent": intent, "entities": read.get(ENTITIES)})
json.dump(readings, open(sys.argv[2], "w", encoding="utf-8"))
"""


def rasa_reads_as_intent(text: str) -> bool:
    """Whether Rasa would read `text` as an intent (and entities), by Rasa's own test."""
    return text.strip().startswith("/")  # stripped twice by Rasa: the same as once


def rasa_readings(texts: list[str]) -> list[dict[str, Any] | None]:
    """Rasa's own reading of each text: None (words, for the NLU) or {intent, entities}."""
    if not RASA_PYTHON.exists():
        pytest.fail(f"{RASA_PYTHON} is missing: `make setup` builds the rasa venv")
    with tempfile.TemporaryDirectory() as folder:
        given, read = Path(folder) / "texts.json", Path(folder) / "readings.json"
        given.write_text(json.dumps(texts), encoding="utf-8")
        done = subprocess.run(
            [str(RASA_PYTHON), "-c", _READ_IN_RASA, str(given), str(read)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"Rasa could not judge the texts:\n{done.stderr[-2000:]}")
        readings: list[dict[str, Any] | None] = json.loads(read.read_text(encoding="utf-8"))
    return readings


def intents_read(texts: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The texts Rasa reads as an intent, with Rasa's reading, by both judges."""
    readings = rasa_readings(texts)
    assert len(readings) == len(texts)
    return [
        (text, reading or {"intent": "(the mirror of Rasa's rule)"})
        for text, reading in zip(texts, readings, strict=True)
        if reading is not None or rasa_reads_as_intent(text)
    ]
