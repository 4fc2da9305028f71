"""Judge the NLU pipeline without the held-out set: `python -m bot.ops.nlu_split [--seed N]`.

Splits the training data 80/20 (`rasa data split nlu`), trains the NLU of config.yml on the 80%
and reads the 20% with it. Prints intent macro-F1 and out-of-scope recall of the blended intent
and of each classifier alone (their `intent_votes`), and how many right and wrong readings fall
under the fallback thresholds, where the bot asks instead of answering. A pipeline or data change
is judged here, on messages the model did not train on, so the held-out set (`make nlu-eval`)
stays a fair last check rather than something tuned to. About 15 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML

from bot.settings import PROJECT_ROOT

RASA_PY = PROJECT_ROOT / ".venvs" / "rasa" / "bin" / "python"
RASA_BIN = PROJECT_ROOT / ".venvs" / "rasa" / "bin" / "rasa"
OUTPUT = PROJECT_ROOT / "var" / "nlu" / "split.json"


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Mean F1 over the labels present in `gold`, as Rasa's intent report averages them."""
    scores = []
    for label in sorted(set(gold)):
        hits = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == label)
        said = sum(1 for p in predicted if p == label)
        true = sum(1 for g in gold if g == label)
        precision = hits / said if said else 0.0
        recall = hits / true
        scores.append(2 * precision * recall / (precision + recall) if hits else 0.0)
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def recall(gold: Sequence[str], predicted: Sequence[str | None], label: str) -> float | None:
    pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if g == label]
    return round(sum(1 for g, p in pairs if p == g) / len(pairs), 4) if pairs else None


def fallback_settings(config: Path) -> tuple[float, float]:
    """(threshold, ambiguity_threshold) of the FallbackClassifier in `config`, Rasa's defaults if absent."""
    for component in YAML(typ="safe").load(config.read_text()).get("pipeline") or []:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3)), float(component.get("ambiguity_threshold", 0.1))
    return 0.0, 0.0


def falls_back(row: dict, threshold: float, ambiguity: float) -> bool:
    return row["confidence"] < threshold or row["confidence"] - row["runner_up"] < ambiguity


def score(rows: list[dict], threshold: float, ambiguity: float) -> dict:
    """The figures of one read of the 20%: blended, each classifier alone, and the fallback shares."""
    gold = [r["gold"] for r in rows]
    readers = {"blended": [r["intent"] for r in rows]}
    for name in sorted({name for r in rows for name in r["votes"]}):
        readers[name] = [r["votes"].get(name) for r in rows]
    right = [r for r in rows if r["intent"] == r["gold"]]
    wrong = [r for r in rows if r["intent"] != r["gold"]]
    return {
        "messages": len(rows),
        "readers": {
            name: {
                "intent_macro_f1": macro_f1(gold, said),
                "out_of_scope_recall": recall(gold, said, "out_of_scope"),
            }
            for name, said in readers.items()
        },
        "fallback": {
            "threshold": threshold,
            "ambiguity_threshold": ambiguity,
            "right_but_asked": round(
                sum(falls_back(r, threshold, ambiguity) for r in right) / max(len(right), 1), 4
            ),
            "wrong_but_asked": round(
                sum(falls_back(r, threshold, ambiguity) for r in wrong) / max(len(wrong), 1), 4
            ),
        },
    }


def rasa(*args: str, cwd: Path = PROJECT_ROOT) -> None:
    env = {**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "RASA_TELEMETRY_ENABLED": "false"}
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{Path(args[0]).name} {args[1]} failed with exit code {result.returncode}")


def run_split(seed: int, config: Path, nlu: Path, work: Path) -> dict:
    """Split, train on the 80%, read the 20%: the scored figures."""
    split = work / "split"
    rasa(str(RASA_BIN), "data", "split", "nlu", "--nlu", str(nlu), "--training-fraction", "0.8",
         "--random-seed", str(seed), "--out", str(split))  # fmt: skip
    rasa(str(RASA_BIN), "train", "nlu", "--config", str(config), "--nlu", str(split / "training_data.yml"),
         "--out", str(work), "--fixed-model-name", "split")  # fmt: skip
    votes = work / "votes.json"
    rasa(str(RASA_PY), str(PROJECT_ROOT / "bot" / "ops" / "nlu_votes.py"), str(work / "split.tar.gz"),
         str(split / "test_data.yml"), str(votes))  # fmt: skip
    threshold, ambiguity = fallback_settings(config)
    return {"seed": seed, "config": config.name} | score(json.loads(votes.read_text()), threshold, ambiguity)


def print_figures(figures: dict) -> None:
    print(
        f"split seed {figures['seed']}: trained on 80%, read {figures['messages']} messages of the other 20%"
    )
    print(f"{'reader':<22}{'macro-F1':>10}{'oos recall':>12}")
    for name, v in figures["readers"].items():
        print(f"{name:<22}{v['intent_macro_f1']:>10.3f}{v['out_of_scope_recall'] or 0:>12.3f}")
    f = figures["fallback"]
    print(
        f"asked instead of answered (threshold {f['threshold']}, ambiguity {f['ambiguity_threshold']}):"
        f" {f['right_but_asked']:.1%} of right readings, {f['wrong_but_asked']:.1%} of wrong ones"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=11, help="which 80/20 split (default 11)")
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "config.yml")
    parser.add_argument("--nlu", type=Path, default=PROJECT_ROOT / "data" / "nlu")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="careloop-nlu-split-") as tmp:
        figures = run_split(args.seed, args.config.resolve(), args.nlu.resolve(), Path(tmp))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
