"""Every journey and branch as a test story: `rasa test` on tests/stories/, failing on any error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.ops.model import ensure_model
from bot.settings import PROJECT_ROOT


@pytest.mark.rasa
def test_conversation_stories_pass(project_root: Path, tmp_path: Path) -> None:
    model = ensure_model(PROJECT_ROOT / "models")
    result = subprocess.run(
        [
            str(project_root / ".venvs/rasa/bin/rasa"),
            "test",
            "core",
            "--stories",
            "tests/stories",
            "--model",
            str(model),
            "--fail-on-prediction-errors",
            "--out",
            str(tmp_path),
        ],
        cwd=project_root,
        capture_output=True,
        text=True,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=900,
    )
    failed = tmp_path / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + "\n" + detail[-6000:]
    assert "# None of the test stories failed - all good!" in detail or not detail.strip("\n #")
