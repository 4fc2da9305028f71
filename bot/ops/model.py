"""Train the Rasa model only when its inputs changed: `python -m bot.ops.model`.

The model's name carries a fingerprint of everything training reads (config, domain, training
data, the pinned Rasa version), so an unchanged project reuses its model, and a model trained once
on this machine (kept in the user cache) is reused by a fresh clone too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.settings import PROJECT_ROOT

# bot/nlu holds the NLU components of our own that config.yml names.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "bot/nlu", "requirements/rasa.txt")
RASA_BIN = PROJECT_ROOT / ".venvs" / "rasa" / "bin" / "rasa"


def fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of every file training reads, in a stable order."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(models_dir: Path, root: Path = PROJECT_ROOT) -> Path:
    """Where the model for the current training inputs lives."""
    return models_dir / f"careloop-{fingerprint(root)}.tar.gz"


def cache_dir() -> Path:
    return Path(os.environ.get("CARELOOP_CACHE") or Path.home() / ".cache" / "careloop") / "models"


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """Hold a machine-wide lock for `name`: two runs needing the same model train it once."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(models_dir: Path, root: Path = PROJECT_ROOT) -> Path:
    """Return the up-to-date model, training it (once) if the inputs changed."""
    target = model_path(models_dir, root)
    if target.exists():
        print(f"model is up to date: {target.name}", file=sys.stderr)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir() / target.name
    with _exclusive(target.name):
        if cached.exists():
            print(f"training data unchanged since {target.name} was trained: reused it", file=sys.stderr)
        else:
            partial = cached.with_name(f"partial-{os.getpid()}-{target.name}")
            seconds, cpu_seconds = train(partial, root)
            partial.replace(cached)  # atomic: nobody ever reads a half-written model
            record_training(cached, seconds, cpu_seconds)
        scratch = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copy2(cached, scratch)
        scratch.replace(target)
    for old in models_dir.glob("careloop-*.tar.gz"):
        if old != target:
            old.unlink()
    return target


def training_record_path(model: Path) -> Path:
    return cache_dir() / f"{model.name.removesuffix('.tar.gz')}.training.json"


def record_training(model: Path, seconds: float, cpu_seconds: float | None = None) -> None:
    """Remember how long a full `rasa train` of `model` took, when, and on how many cores."""
    record = {
        "model": model.name,
        "seconds": round(seconds, 1),
        # Processor time is what other work on the machine changes least: wall time under load
        # stretches, the CPU seconds training needed do not.
        "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 1),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine as it finished
    }
    training_record_path(model).write_text(json.dumps(record) + "\n")


def training_record(model: Path) -> dict[str, Any] | None:
    """What `record_training` wrote for `model`, if this machine trained it."""
    path = training_record_path(model)
    return dict(json.loads(path.read_text())) if path.exists() else None


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(target: Path, root: Path = PROJECT_ROOT) -> tuple[float, float]:
    """Run `rasa train` into `target`; return the wall and processor seconds it took."""
    print("training data changed: training the Rasa model (a few minutes) ...", file=sys.stderr)
    started, cpu_before = time.monotonic(), _children_cpu_seconds()
    subprocess.run(
        [
            str(RASA_BIN),
            "train",
            "--config",
            "config.yml",
            "--domain",
            "domain.yml",
            "--data",
            "data",
            "--out",
            str(target.parent),
            "--fixed-model-name",
            target.name.removesuffix(".tar.gz"),
            # Rasa trains TensorFlow on one thread unless told otherwise; the machine has more.
            "--num-threads",
            str(os.cpu_count() or 1),
            # `make validate` and `make test` validate the data (with --fail-on-warnings); here it
            # would only repeat that work before every training.
            "--skip-validation",
        ],
        cwd=root,
        check=True,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
    )
    seconds, cpu_seconds = time.monotonic() - started, _children_cpu_seconds() - cpu_before
    print(f"trained {target.name} in {seconds:.0f} s ({cpu_seconds:.0f} CPU-seconds)", file=sys.stderr)
    return seconds, cpu_seconds


def main() -> None:
    from bot.bootstrap import bootstrap

    ensure_model(bootstrap(command=True).models_dir)


if __name__ == "__main__":
    main()
