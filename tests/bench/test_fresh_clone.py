"""The fresh-clone figure of `make bench`: tools/venv.sh records creating an environment from nothing
(and a repair leaves that record alone), `make db`'s two commands are timed into a scratch CRM, and
the table shows every part and their sum, naming what is not known. Shapes only, never times."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bench.fresh_clone import environment_record, fresh_clone, time_database_setup
from bench.report import fresh_clone_rows
from bot.settings import PROJECT_ROOT

TRAINING = {"seconds": 300.0, "cpu_seconds": 410.0, "trained_at": "2026-12-04T18:00:00+00:00", "cores": 2}
DATABASE = {"customers": 500, "migrate_s": 3.0, "demo_s": 27.0}


@pytest.mark.timeout(300)
def test_venv_sh_records_a_creation_from_nothing_and_a_repair_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    for script in ("venv.sh", "check_python.sh"):
        shutil.copy2(PROJECT_ROOT / "tools" / script, tmp_path / "tools" / script)
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "empty.txt").write_text("# nothing to install\n")
    command = [str(tmp_path / "tools" / "venv.sh"), "probe", "requirements/empty.txt"]

    subprocess.run(command, check=True, capture_output=True, timeout=240)
    record = environment_record("probe", root=tmp_path)
    assert record is not None
    assert set(record) == {"environment", "lock", "seconds", "created_at", "cores", "load_average_1m"}
    assert (record["environment"], record["lock"]) == ("probe", "requirements/empty.txt")
    assert isinstance(record["seconds"], float) and record["cores"] >= 1
    assert (tmp_path / ".venvs" / "probe" / ".installed").exists()

    written = (tmp_path / ".venvs" / "probe" / "created.json").read_text()
    subprocess.run(command, check=True, capture_output=True, timeout=240)  # a repair: nothing created
    assert (tmp_path / ".venvs" / "probe" / "created.json").read_text() == written


def test_an_environment_without_a_record_or_with_a_broken_one_is_not_known(tmp_path: Path) -> None:
    assert environment_record("app", root=tmp_path) is None
    (tmp_path / ".venvs" / "app").mkdir(parents=True)
    (tmp_path / ".venvs" / "app" / "created.json").write_text('{"seconds": ')
    assert environment_record("app", root=tmp_path) is None


@pytest.mark.timeout(300)
def test_make_dbs_commands_are_timed_into_a_scratch_crm_with_its_demo_customers(tmp_path: Path) -> None:
    timings = time_database_setup(tmp_path, customers=6)

    assert set(timings) == {"customers", "migrate_s", "demo_s"} and timings["customers"] == 6
    with sqlite3.connect(tmp_path / "crm.db") as db:
        assert db.execute("select count(*) from customer").fetchone() == (6,)


def test_every_part_is_shown_and_the_sum_is_theirs() -> None:
    fresh = fresh_clone(
        environments={"app": {"seconds": 60.0}, "rasa": {"seconds": 150.0}},
        training=TRAINING,
        database=DATABASE,
        cold_start_s=45.0,
    )
    assert fresh["parts_s"] == {
        "environment app": 60.0,
        "environment rasa": 150.0,
        "training": 300.0,
        "database": 30.0,
        "cold start": 45.0,
    }
    assert (fresh["total_s"], fresh["missing"]) == (585.0, [])
    rows = {figure: value for area, figure, value in fresh_clone_rows(fresh) if area == "fresh clone"}
    assert rows == {
        "environments, created by tools/venv.sh (recorded)": "app 60 s, rasa 150 s",
        "training, full `rasa train` (recorded)": "300 s",
        "migrations + demo data, as `make db` (measured), 500 customers": "3.0 s + 27.0 s",
        "cold start to first answer (measured)": "45 s",
        "fresh clone to first answer (sum)": "9.8 min (target ≤ 10 min)",
    }


def test_a_part_without_a_record_is_named_and_the_sum_is_a_lower_bound() -> None:
    fresh = fresh_clone(
        environments={"app": None, "rasa": {"seconds": 150.0}},
        training=None,
        database=DATABASE,
        cold_start_s=45.0,
    )
    assert fresh["missing"] == ["environment app", "training"]
    rows = {figure: value for _, figure, value in fresh_clone_rows(fresh)}
    assert (
        rows["environments, created by tools/venv.sh (recorded)"]
        == "app not recorded on this machine, rasa 150 s"
    )
    assert rows["fresh clone to first answer (sum)"] == (
        "at least 3.8 min: environment app, training not known (target ≤ 10 min)"
    )


def test_a_run_without_the_database_step_says_so() -> None:
    assert fresh_clone_rows(None) == [
        ("fresh clone", "fresh clone to first answer", "not measured (--no-database-setup)")
    ]
