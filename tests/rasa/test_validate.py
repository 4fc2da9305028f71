"""The Rasa project is valid: `rasa data validate` passes with no warnings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.mark.rasa
def test_rasa_data_validate_has_no_warnings(project_root: Path) -> None:
    result = subprocess.run(
        [str(project_root / ".venvs/rasa/bin/rasa"), "data", "validate", "--fail-on-warnings"],
        cwd=project_root,
        capture_output=True,
        text=True,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "UserWarning" not in result.stdout + result.stderr
