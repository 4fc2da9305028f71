"""bot/ops/rasa_run.py hands Rasa its token whatever characters the token begins with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.mark.rasa
def test_a_token_that_begins_with_a_dash_is_still_the_tokens_value(project_root: Path) -> None:
    # Generated tokens are URL-safe base64, so one in 64 begins with "-"; `--auth-token -x` would be
    # read as a missing value and Rasa would not start. A bad port makes rasa stop right after
    # reading its options: the only complaint must be about the port.
    names = ("RASA_TOKEN", "RASA_CHANNEL_SECRET", "ACTION_SERVER_TOKEN")
    secrets = dict.fromkeys(names, "-starts-with-a-dash")
    result = subprocess.run(
        [str(project_root / ".venvs/rasa/bin/python"), "bot/ops/rasa_run.py", "--port", "not-a-port"],
        cwd=project_root,
        capture_output=True,
        text=True,
        env={**os.environ, **secrets, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode != 0
    assert "argument -p/--port: invalid int value: 'not-a-port'" in result.stderr, result.stderr[-2000:]
    assert "auth-token" not in result.stderr
