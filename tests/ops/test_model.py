"""The model is retrained only when what training reads has changed."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.ops import model


@pytest.fixture
def project(tmp_path: Path, project_root: Path) -> Path:
    root = tmp_path / "project"
    for name in model.TRAINING_INPUTS:
        source = project_root / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def test_fingerprint_changes_with_training_data_only(project: Path) -> None:
    before = model.fingerprint(project)
    (project / "README.md").write_text("not training input")
    assert model.fingerprint(project) == before
    nlu = project / "data" / "nlu" / "greet.yml"
    nlu.write_text(nlu.read_text() + "      - hey ho\n")
    assert model.fingerprint(project) != before


def test_fingerprint_covers_our_nlu_components_but_not_their_bytecode(project: Path) -> None:
    before = model.fingerprint(project)
    cache = project / "bot" / "nlu" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "blend.cpython-310.pyc").write_bytes(b"compiled")
    assert model.fingerprint(project) == before
    component = project / "bot" / "nlu" / "blend.py"
    component.write_text(component.read_text() + "\n# changed\n")
    assert model.fingerprint(project) != before


def test_an_up_to_date_model_is_reused_without_training(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARELOOP_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "models"
    cached = model.cache_dir() / model.model_path(models, project).name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a model trained earlier on this machine")
    (models).mkdir()
    (models / "careloop-0000000000000000.tar.gz").write_bytes(b"stale")

    path = model.ensure_model(models, project)

    assert path.read_bytes() == b"a model trained earlier on this machine"
    assert sorted(p.name for p in models.iterdir()) == [path.name]  # the stale model is gone
    assert "reused" in capsys.readouterr().err
    assert model.ensure_model(models, project) == path
    assert "up to date" in capsys.readouterr().err


def test_a_training_is_recorded_with_its_duration_and_date(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELOOP_CACHE", str(tmp_path / "cache"))

    def fake_rasa_train(target: Path, root: Path) -> tuple[float, float]:  # stands in for `rasa train`
        target.write_bytes(b"a freshly trained model")
        return 612.0, 1090.5

    monkeypatch.setattr(model, "train", fake_rasa_train)
    path = model.ensure_model(tmp_path / "models", project)

    record = model.training_record(path)
    assert record is not None
    assert record["model"] == path.name and record["seconds"] == 612.0 and record["cpu_seconds"] == 1090.5
    assert record["trained_at"].startswith(str(datetime.now(timezone.utc).year))
    assert model.training_record(tmp_path / "models" / "careloop-0000000000000000.tar.gz") is None


def test_training_reports_the_processor_seconds_of_the_training_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `rasa` executable (the process boundary): it spends processor time, then writes the
    # model where `rasa train --out DIR --fixed-model-name NAME` would.
    fake_rasa = tmp_path / "rasa"
    fake_rasa.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "args = sys.argv[1:]\n"
        "out, name = args[args.index('--out') + 1], args[args.index('--fixed-model-name') + 1]\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end:\n"
        "    pass\n"
        "open(f'{out}/{name}.tar.gz', 'wb').write(b'model')\n"
    )
    fake_rasa.chmod(0o755)
    monkeypatch.setattr(model, "RASA_BIN", fake_rasa)
    target = tmp_path / "careloop-1234.tar.gz"

    seconds, cpu_seconds = model.train(target, tmp_path)

    assert target.read_bytes() == b"model"
    assert 0.3 <= cpu_seconds <= seconds + 1
