"""An NLU review export is training data Rasa reads: dropped into data/nlu/review/ of a copy of the
project, Rasa's own importer finds its examples with their entities and retrieval intents, and its
validator finds no intent outside the domain and no example in two intents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from bot.crm.masking import Known, mask
from bot.crm.nlu_export import render
from bot.crm.nlu_review import vocabulary

READ_BACK = """
import json, sys
from rasa.shared.importers.importer import TrainingDataImporter
from rasa.validator import Validator
importer = TrainingDataImporter.load_from_config("config.yml", "domain.yml", ["data"])
marks = sys.argv[1:]
found = [
    {"text": m.get("text"), "intent": m.get("intent_response_key") or m.get("intent"),
     "entities": sorted((e["entity"], e["value"]) for e in m.get("entities") or [])}
    for m in importer.get_nlu_data().training_examples if any(k in (m.get("text") or "") for k in marks)
]
validator = Validator.from_importer(importer)
ok = validator.verify_intents(ignore_warnings=False) and validator.verify_example_repetition_in_intents(False)
print(json.dumps({"found": found, "valid": ok}))
"""


@pytest.mark.rasa
def test_rasa_reads_an_export_in_data_nlu_review(project_root: Path, tmp_path: Path) -> None:
    for name in ("domain.yml", "config.yml"):
        shutil.copy(project_root / name, tmp_path / name)
    shutil.copytree(project_root / "data", tmp_path / "data", ignore=shutil.ignore_patterns("review"))
    shutil.copytree(project_root / "bot" / "nlu", tmp_path / "bot" / "nlu")
    (tmp_path / "bot" / "__init__.py").touch()
    words = vocabulary(project_root)
    ulla = Known(first_names=("Ulla",), emails=("ulla@mail.example",))
    examples = {
        "complain": [
            mask(
                "Ulla here, zq7 lodging a grievance about cl104233 (ulla@mail.example)", ulla, words.entities
            )
        ],
        "faq/returns": [mask("zq7 can the grinder go back after 40 days", ulla, words.entities)],
    }
    folder = tmp_path / "data" / "nlu" / "review"
    folder.mkdir()
    (folder / "review-2026-12-04-1.yml").write_text(render(examples, "agent:1", date(2026, 12, 4)))

    result = subprocess.run(
        [str(project_root / ".venvs/rasa/bin/python"), "-c", READ_BACK, "zq7"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["valid"] is True
    assert sorted(read["found"], key=lambda e: e["intent"]) == [
        {
            "text": "Anna here, zq7 lodging a grievance about CL-100000 (anna@example.com)",
            "intent": "complain",
            "entities": [["email", "anna@example.com"], ["order_id", "CL-100000"]],
        },
        {"text": "zq7 can the grinder go back after 40 days", "intent": "faq/returns", "entities": []},
    ]
