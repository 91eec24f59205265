"""The pieces the load gates and the benchmark numbers rest on."""

from __future__ import annotations

import math

from loadtest import promtext
from loadtest.profile import load_profile
from loadtest.run import gates
from loadtest.steps import CHECK, TURN, StepRecorder

METRICS = """
# TYPE x_seconds histogram
x_seconds_bucket{le="0.001",operation="put"} 10.0
x_seconds_bucket{le="0.01",operation="put"} 90.0
x_seconds_bucket{le="0.1",operation="put"} 100.0
x_seconds_bucket{le="+Inf",operation="put"} 100.0
x_seconds_bucket{le="0.001",operation="get"} 5.0
"""


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = promtext.bucket_deltas({}, promtext.parse(METRICS), "x_seconds", operation="put")
    assert buckets[-1] == (math.inf, 100.0)
    assert math.isclose(promtext.quantile(0.5, buckets), 0.001 + 0.009 * 40 / 80)
    assert math.isclose(promtext.quantile(0.99, buckets), 0.01 + 0.09 * 9 / 10)
    assert math.isnan(promtext.quantile(0.5, []))


def test_expected_409_is_not_a_failure_but_a_lost_turn_is(monkeypatch) -> None:
    monkeypatch.setenv("LOADTEST_P95_MS", "100")
    recorder = StepRecorder()
    recorder.begin_step(10)
    recorder.record("POST", TURN, 20.0, 200, failed=False)
    recorder.record("POST", f"{TURN} [double-text reject]", 5.0, 409, False, expected_409=True)
    summary = recorder.summary()
    assert summary["failures"] == 0 and summary["expected_409"] == 1
    assert gates(summary, load_profile(), 0, []) == []
    recorder.record(CHECK, "lost turn", 0.0, 0, failed=True)
    recorder.record("POST", TURN, 500.0, 503, failed=True)
    failed = gates(recorder.summary(), load_profile(), 1, ["checkpoints.db: bad"])
    assert any("CHECK lost turn: 1" in reason for reason in failed)
    assert any("5xx" in reason for reason in failed)
    assert any("p95" in reason for reason in failed)
    assert any("integrity_check" in reason for reason in failed)
