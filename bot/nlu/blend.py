"""Blend two intent classifiers' confidences into one ranking (pure Python, no Rasa import).

A ranking is Rasa's list of {"name": intent, "confidence": p}, best first. The blend is the
weighted average of the two confidences of each intent (an intent missing from one ranking counts
as 0 there), so a message both classifiers agree on stays confident, and a message they disagree
on comes out unsure, which is what the fallback threshold is for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Ranking = list[dict[str, object]]


def blend(
    first: Iterable[Mapping[str, object]], second: Iterable[Mapping[str, object]], first_weight: float
) -> Ranking:
    """`first_weight` × first + (1 − `first_weight`) × second, best first (ties by name)."""
    if not 0.0 <= first_weight <= 1.0:
        raise ValueError(f"first_weight must be between 0 and 1, not {first_weight}")
    scores: dict[str, float] = {}
    for ranking, weight in ((first, first_weight), (second, 1.0 - first_weight)):
        for entry in ranking:
            name = str(entry["name"])
            scores[name] = scores.get(name, 0.0) + weight * float(entry["confidence"])  # type: ignore[arg-type]
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [{"name": name, "confidence": confidence} for name, confidence in ordered]
