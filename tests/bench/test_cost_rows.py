"""The cost rows of `make bench` say what a newcomer waits: training, its processor time, the start."""

from __future__ import annotations

from bench.report import _cost_rows


def _cost(training: dict | None) -> dict:
    return {
        "training": training,
        "cold_start_s": 42.0,
        "healthy_after_s": 30.0,
        "peak_memory_mb": {"rasa": 900},
    }


def test_training_time_carries_its_processor_seconds_and_the_wait_to_the_first_answer() -> None:
    training = {"seconds": 258.0, "cpu_seconds": 401.4, "trained_at": "2026-12-04T18:00:00+00:00", "cores": 2}
    rows = {figure: value for _, figure, value in _cost_rows(_cost(training | {"load_average_1m": 0.4}))}

    expected = "258 s, full `rasa train` on 2026-12-04 (2 cores, load 0.4, 401 CPU-seconds)"
    assert rows["training time"] == expected
    assert rows["a changed model to its first answer (training + cold start)"] == "5.0 min"


def test_a_model_trained_elsewhere_is_said_to_be_unmeasured() -> None:
    rows = {figure: value for _, figure, value in _cost_rows(_cost(None))}

    assert rows["a changed model to its first answer (training + cold start)"].startswith("not measured")
    assert rows["training time"].startswith("not recorded")
