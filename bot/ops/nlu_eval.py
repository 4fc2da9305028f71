"""Score an NLU model on the held-out set: `python -m bot.ops.nlu_eval [--model PATH]`.

Runs `rasa test nlu` on tests/nlu/heldout.yml (never used for training) and prints the intent
macro-F1 (the retrieval intent `faq` counts as one intent, as Rasa's intent report does), the
out-of-scope recall, the per-intent F1 table and the response selector's accuracy over the
`faq/<topic>` answers. The figures are also written to var/nlu/heldout.json.

`rasa test nlu` undoes FallbackClassifier predictions before scoring, so the report shows the
intent the classifier would have picked. The share of held-out messages whose confidence is below
the fallback threshold (they would get `nlu_fallback` in a conversation) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bot.ops.nlu_split import fallback_settings
from bot.settings import PROJECT_ROOT

RASA_BIN = PROJECT_ROOT / ".venvs" / "rasa" / "bin" / "rasa"
HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
OUTPUT = PROJECT_ROOT / "var" / "nlu" / "heldout.json"
SUMMARY_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}


def newest_model(models_dir: Path = PROJECT_ROOT / "models") -> Path:
    """The most recently written models/careloop-*.tar.gz."""
    models = sorted(models_dir.glob("careloop-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit(f"no careloop-*.tar.gz model in {models_dir}: pass --model or run `make model`")
    return models[-1]


def run_rasa_test(model: Path, out_dir: Path) -> None:
    """`rasa test nlu` on the held-out set, reports into `out_dir`."""
    command = [
        str(RASA_BIN),
        "test",
        "nlu",
        "--nlu",
        str(HELDOUT),
        "--model",
        str(model),
        "--out",
        str(out_dir),
        "--successes",
        "--no-plot",
    ]
    env = {**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"rasa test nlu failed with exit code {result.returncode}")


def read_json(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None


def per_label_f1(report: dict) -> dict[str, dict]:
    """F1, precision, recall and support of each label present in the held-out set."""
    return {
        label: {k: round(v[k], 4) for k in ("f1-score", "precision", "recall")} | {"support": v["support"]}
        for label, v in sorted(report.items())
        if label not in SUMMARY_KEYS and isinstance(v, dict) and v.get("support", 0) > 0
    }


def macro_f1(labels: dict[str, dict]) -> float:
    return round(sum(v["f1-score"] for v in labels.values()) / len(labels), 4) if labels else 0.0


def fallback_threshold(config: Path = PROJECT_ROOT / "config.yml") -> float | None:
    """The FallbackClassifier threshold in the pipeline, if there is one."""
    threshold, _ = fallback_settings(config)
    return threshold or None


def below_threshold_share(out_dir: Path, threshold: float | None) -> float | None:
    """Share of held-out messages whose top intent confidence is below the fallback threshold."""
    predictions = (read_json(out_dir / "intent_successes.json") or []) + (
        read_json(out_dir / "intent_errors.json") or []
    )
    if threshold is None or not predictions:
        return None
    low = sum(1 for p in predictions if (p["intent_prediction"]["confidence"] or 0) < threshold)
    return round(low / len(predictions), 4)


def summarise(out_dir: Path, model: Path) -> dict:
    """The figures from the reports `rasa test nlu` wrote into `out_dir`."""
    intents = per_label_f1(read_json(out_dir / "intent_report.json") or {})
    selector = read_json(out_dir / "response_selection_report.json") or {}
    threshold = fallback_threshold()
    return {
        "model": model.name,
        "heldout": str(HELDOUT.relative_to(PROJECT_ROOT)),
        "intent_macro_f1": macro_f1(intents),
        "out_of_scope_recall": intents.get("out_of_scope", {}).get("recall"),
        "response_selector_accuracy": round(selector["accuracy"], 4) if "accuracy" in selector else None,
        "response_selector_macro_f1": macro_f1(per_label_f1(selector)),
        "fallback_threshold": threshold,
        "below_fallback_threshold": below_threshold_share(out_dir, threshold),
        "intents": intents,
    }


def print_summary(figures: dict) -> None:
    print(f"model: {figures['model']}   held-out: {figures['heldout']}")
    print(f"intent macro-F1:             {figures['intent_macro_f1']:.3f}")
    print(f"out_of_scope recall:         {figures['out_of_scope_recall']}")
    print(f"response selector accuracy:  {figures['response_selector_accuracy']}  (faq/<topic> answers)")
    print(
        f"below fallback threshold:    {figures['below_fallback_threshold']}"
        f"  (threshold {figures['fallback_threshold']}; these would become nlu_fallback)"
    )
    print(f"\n{'intent':<26}{'F1':>7}{'prec':>7}{'recall':>8}{'n':>5}")
    for label, v in figures["intents"].items():
        print(f"{label:<26}{v['f1-score']:>7.3f}{v['precision']:>7.3f}{v['recall']:>8.3f}{v['support']:>5}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model archive (default: newest models/careloop-*.tar.gz)")
    parser.add_argument("--out", type=Path, help="keep Rasa's reports (errors, confusions) in this directory")
    args = parser.parse_args(argv)
    model = (args.model or newest_model()).resolve()
    with tempfile.TemporaryDirectory(prefix="careloop-nlu-eval-") as tmp:
        out_dir = args.out.resolve() if args.out else Path(tmp)
        run_rasa_test(model, out_dir)
        figures = summarise(out_dir, model)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2) + "\n")
    print_summary(figures)
    print(f"\nwritten to {OUTPUT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
