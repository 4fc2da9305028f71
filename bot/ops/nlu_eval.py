"""Score an NLU model on both test sets, side by side: `python -m bot.ops.nlu_eval [--model PATH]`.

The team's held-out set (tests/nlu/heldout.yml) was written by the hands that wrote the training
data; the blind set (tests/nlu/blind.yml) was written from customer scenarios by someone who never
read either. Neither is used for training. One `rasa test nlu` scores both (Rasa reads the two files
as one directory; each prediction is given back to its set by its text), and for each set this
prints the intent macro-F1 (the retrieval intent `faq` counts as one intent, as Rasa's intent report
does), the in-scope accuracy, the out-of-scope recall and precision, the per-intent F1, the
response selector's accuracy over the `faq/<topic>` answers and the confusion pairs that cost the
most macro-F1, with the gap between the sets (team set minus blind set): a large gap means the
training data is narrower than the way customers write. The figures are written to
var/nlu/heldout.json and var/nlu/blind.json.

`rasa test nlu` undoes FallbackClassifier predictions before scoring, so the figures are for the
intent the classifier would have picked. The share of messages whose confidence is below the
fallback threshold (they would get `nlu_fallback` in a conversation) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from bot.ops.nlu_split import fallback_settings
from bot.settings import PROJECT_ROOT

RASA_BIN = PROJECT_ROOT / ".venvs" / "rasa" / "bin" / "rasa"
HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
BLIND = PROJECT_ROOT / "tests" / "nlu" / "blind.yml"
OUTPUT = PROJECT_ROOT / "var" / "nlu" / "heldout.json"
BLIND_OUTPUT = PROJECT_ROOT / "var" / "nlu" / "blind.json"
OUT_OF_SCOPE = "out_of_scope"
TOP_CONFUSIONS = 10
# [text](entity), [text](entity:value) and [text]{"entity": ...}: Rasa scores the text alone.
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass(frozen=True)
class EvalSet:
    """A set of labelled messages never used for training, and where its figures are written."""

    name: str
    path: Path
    output: Path


TEAM_SET = EvalSet("heldout", HELDOUT, OUTPUT)
BLIND_SET = EvalSet("blind", BLIND, BLIND_OUTPUT)
TEST_SETS = (TEAM_SET, BLIND_SET)


def newest_model(models_dir: Path = PROJECT_ROOT / "models") -> Path:
    """The most recently written models/careloop-*.tar.gz."""
    models = sorted(models_dir.glob("careloop-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit(f"no careloop-*.tar.gz model in {models_dir}: pass --model or run `make model`")
    return models[-1]


def run_rasa_test(model: Path, out_dir: Path, nlu: Path = HELDOUT) -> None:
    """`rasa test nlu` on `nlu` (a file or a directory of files), reports into `out_dir`."""
    command = [
        str(RASA_BIN),
        "test",
        "nlu",
        "--nlu",
        str(nlu),
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


def run_rasa_test_on_sets(model: Path, out_dir: Path, sets: Iterable[EvalSet] = TEST_SETS) -> None:
    """One `rasa test nlu` over every set: the model is loaded once instead of once per set."""
    with tempfile.TemporaryDirectory(prefix="careloop-nlu-sets-") as tmp:
        for test_set in sets:
            (Path(tmp) / f"{test_set.name}.yml").symlink_to(test_set.path)
        run_rasa_test(model, out_dir, Path(tmp))


def shown(path: Path) -> str:
    """A path relative to the project when it is inside it."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def read_json(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None


def message_key(text: str) -> str:
    """A message as Rasa reports it, whitespace evened out, to find the set it came from."""
    return " ".join(text.split())


def set_messages(path: Path) -> set[str]:
    """The keys of every message in a Rasa YAML NLU file, entity annotations removed."""
    content = YAML(typ="safe").load(path.read_text()) or {}
    keys = set()
    for item in content.get("nlu", []):
        for line in str(item.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                keys.add(message_key(ANNOTATION.sub(r"\1", line[2:])))
    return keys


def prediction(predicted: dict) -> tuple[str, float]:
    """(name, confidence) of a Rasa prediction; no prediction at all is "" with confidence 0."""
    return predicted["name"] or "", predicted["confidence"] or 0.0


def intent_pairs(out_dir: Path) -> list[tuple[str, str, str, float]]:
    """(text, true intent, predicted intent, confidence) for every message Rasa scored."""
    found = (read_json(out_dir / "intent_successes.json") or []) + (
        read_json(out_dir / "intent_errors.json") or []
    )
    return [(p["text"], p["intent"], *prediction(p["intent_prediction"])) for p in found]


def response_pairs(out_dir: Path) -> list[tuple[str, str, str]]:
    """(text, true faq/<topic>, selected faq/<topic>) for every message with a retrieval intent."""
    found = (read_json(out_dir / "response_selection_successes.json") or []) + (
        read_json(out_dir / "response_selection_errors.json") or []
    )
    return [
        (p["text"], p["intent_response_key_target"], p["intent_response_key_prediction"]["name"] or "")
        for p in found
    ]


def check_sets_are_disjoint(sets: Iterable[EvalSet]) -> dict[str, set[str]]:
    """{set name: message keys}; refuse sets sharing a message (its prediction could not be placed)."""
    keys = {s.name: set_messages(s.path) for s in sets}
    shared = set.intersection(*keys.values()) if len(keys) > 1 else set()
    if shared:
        raise SystemExit(f"{len(shared)} messages are in more than one test set, e.g. {sorted(shared)[0]!r}")
    return keys


def check_every_prediction_placed(out_dir: Path, keys: dict[str, set[str]]) -> None:
    """Fail loudly if Rasa reported a message that no set holds (the figures would be wrong)."""
    every = set().union(*keys.values())
    stray = [text for text, *_ in intent_pairs(out_dir) if message_key(text) not in every]
    if stray:
        raise SystemExit(f"rasa reported {len(stray)} messages found in no test set, e.g. {stray[0]!r}")


def label_counts(pairs: list[tuple[str, str]]) -> dict[str, tuple[float, float, float, int]]:
    """(precision, recall, F1, support) of each true label, computed as sklearn's report does."""
    support = Counter(true for true, _ in pairs)
    predicted = Counter(pred for _, pred in pairs)
    hits = Counter(true for true, pred in pairs if true == pred)
    counts = {}
    for label in sorted(support):
        precision = hits[label] / predicted[label] if predicted[label] else 0.0
        recall = hits[label] / support[label]
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        counts[label] = (precision, recall, f1, support[label])
    return counts


def label_scores(pairs: list[tuple[str, str]]) -> dict[str, dict]:
    """F1, precision, recall and support of each label present in the set."""
    return {
        label: {"f1-score": round(f1, 4), "precision": round(p, 4), "recall": round(r, 4), "support": n}
        for label, (p, r, f1, n) in label_counts(pairs).items()
    }


def macro_f1(labels: dict[str, dict]) -> float:
    return round(sum(v["f1-score"] for v in labels.values()) / len(labels), 4) if labels else 0.0


def exact_macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Macro-F1 from unrounded per-label figures, so that small differences show."""
    counts = label_counts(pairs)
    return sum(f1 for _, _, f1, _ in counts.values()) / len(counts) if counts else 0.0


def costly_confusions(pairs: list[tuple[str, str]], top: int = TOP_CONFUSIONS) -> list[dict]:
    """The (true → predicted) pairs whose messages, predicted right, would raise macro-F1 the most."""
    actual = exact_macro_f1(pairs)
    confused = Counter((true, pred) for true, pred in pairs if true != pred)
    costs = []
    for (true, pred), count in confused.items():
        fixed = [(t, t if (t, p) == (true, pred) else p) for t, p in pairs]
        cost = round(exact_macro_f1(fixed) - actual, 4)
        costs.append({"true": true, "predicted": pred, "messages": count, "cost": cost})
    return sorted(costs, key=lambda c: (-c["cost"], -c["messages"], c["true"], c["predicted"]))[:top]


def in_scope_accuracy(pairs: list[tuple[str, str]]) -> float | None:
    """Share of messages meant for an intent of ours (not out of scope) given that intent."""
    in_scope = [(true, pred) for true, pred in pairs if true != OUT_OF_SCOPE]
    return round(sum(true == pred for true, pred in in_scope) / len(in_scope), 4) if in_scope else None


def fallback_threshold(config: Path = PROJECT_ROOT / "config.yml") -> float | None:
    """The FallbackClassifier threshold in the pipeline, if there is one."""
    threshold, _ = fallback_settings(config)
    return threshold or None


def below_threshold_share(confidences: list[float], threshold: float | None) -> float | None:
    """Share of messages whose top intent confidence is below the fallback threshold."""
    if threshold is None or not confidences:
        return None
    return round(sum(1 for c in confidences if c < threshold) / len(confidences), 4)


def summarise(out_dir: Path, model: Path, test_set: EvalSet = TEAM_SET, keys: set[str] | None = None) -> dict:
    """The figures of `test_set` from the predictions `rasa test nlu` wrote into `out_dir`.

    `keys` (message keys of the set) picks the set's messages out of a run over several sets;
    without it every message in `out_dir` is the set's.
    """

    def mine(text: str) -> bool:
        return keys is None or message_key(text) in keys

    scored = [(true, pred, conf) for text, true, pred, conf in intent_pairs(out_dir) if mine(text)]
    pairs = [(true, pred) for true, pred, _ in scored]
    answers = [(true, pred) for text, true, pred in response_pairs(out_dir) if mine(text)]
    intents = label_scores(pairs)
    selector = label_scores(answers)
    threshold = fallback_threshold()
    return {
        "model": model.name,
        "set": test_set.name,
        "heldout": shown(test_set.path),
        "messages": len(pairs),
        "intent_macro_f1": macro_f1(intents),
        "in_scope_accuracy": in_scope_accuracy(pairs),
        "out_of_scope_recall": intents.get(OUT_OF_SCOPE, {}).get("recall"),
        "out_of_scope_precision": intents.get(OUT_OF_SCOPE, {}).get("precision"),
        "response_selector_accuracy": (
            round(sum(t == p for t, p in answers) / len(answers), 4) if answers else None
        ),
        "response_selector_macro_f1": macro_f1(selector),
        "fallback_threshold": threshold,
        "below_fallback_threshold": below_threshold_share([c for *_, c in scored], threshold),
        "intents": intents,
        "confusions": costly_confusions(pairs),
    }


def evaluate(model: Path, sets: tuple[EvalSet, ...], out_dir: Path) -> dict[str, dict]:
    """{set name: figures} from one `rasa test nlu` over every set, reports kept in `out_dir`."""
    keys = check_sets_are_disjoint(sets)
    run_rasa_test_on_sets(model, out_dir, sets)
    check_every_prediction_placed(out_dir, keys)
    return {s.name: summarise(out_dir, model, s, keys[s.name]) for s in sets}


def gap(team: float | None, blind: float | None) -> str:
    return f"{team - blind:+.3f}" if team is not None and blind is not None else "-"


def number(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


HEADLINE = (
    ("messages", "messages"),
    ("intent_macro_f1", "intent macro-F1"),
    ("in_scope_accuracy", "in-scope accuracy"),
    ("out_of_scope_recall", "out_of_scope recall"),
    ("out_of_scope_precision", "out_of_scope precision"),
    ("response_selector_accuracy", "faq/<topic> answer accuracy"),
    ("below_fallback_threshold", "below fallback threshold"),
)


def print_side_by_side(team: dict, blind: dict) -> None:
    """Both sets' figures in columns, the gap (team minus blind) beside them."""
    print(f"model: {team['model']}   team set: {team['heldout']}   blind set: {blind['heldout']}")
    print(f"\n{'':<30}{'team':>8}{'blind':>8}{'gap':>8}")
    for key, label in HEADLINE:
        if key == "messages":
            print(f"{label:<30}{team[key]:>8}{blind[key]:>8}")
        else:
            print(f"{label:<30}{number(team[key]):>8}{number(blind[key]):>8}{gap(team[key], blind[key]):>8}")
    print(
        f"(below the fallback threshold {team['fallback_threshold']} a message would get nlu_fallback;"
        " the other figures are for the classifier's top intent)"
    )
    print(f"\n{'intent F1':<26}{'team':>7}{'n':>5}{'blind':>8}{'n':>5}{'gap':>8}{'blind P':>9}{'blind R':>9}")
    for label in sorted(set(team["intents"]) | set(blind["intents"])):
        t, b = team["intents"].get(label), blind["intents"].get(label)
        tf, bf = (t or {}).get("f1-score"), (b or {}).get("f1-score")
        print(
            f"{label:<26}{number(tf):>7}{(t or {}).get('support', 0):>5}{number(bf):>8}"
            f"{(b or {}).get('support', 0):>5}{gap(tf, bf):>8}"
            f"{number((b or {}).get('precision')):>9}{number((b or {}).get('recall')):>9}"
        )
    for figures, title in ((team, "team set"), (blind, "blind set")):
        print(f"\nconfusions that cost most macro-F1 on the {title} (true → predicted):")
        for c in figures["confusions"]:
            print(f"  {c['true'] + ' → ' + c['predicted']:<50}{c['messages']:>4} msgs  -{c['cost']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model archive (default: newest models/careloop-*.tar.gz)")
    parser.add_argument("--out", type=Path, help="keep Rasa's reports (errors, confusions) in this directory")
    args = parser.parse_args(argv)
    model = (args.model or newest_model()).resolve()
    with tempfile.TemporaryDirectory(prefix="careloop-nlu-eval-") as tmp:
        figures = evaluate(model, TEST_SETS, args.out.resolve() if args.out else Path(tmp))
    for test_set in TEST_SETS:
        test_set.output.parent.mkdir(parents=True, exist_ok=True)
        test_set.output.write_text(json.dumps(figures[test_set.name], indent=2) + "\n")
    print_side_by_side(figures[TEAM_SET.name], figures[BLIND_SET.name])
    written = ", ".join(shown(s.output) for s in TEST_SETS)
    print(f"\nwritten to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
