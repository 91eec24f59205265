"""The pieces the load gates and the benchmark numbers rest on."""

from __future__ import annotations

import math

import pytest

from loadtest.benchmark.report import _ratios
from loadtest.benchmark.runner import RunResult
from loadtest.common import promtext
from loadtest.locust_profile.shape import load_profile
from loadtest.locust_profile.steps import CHECK, TURN, StepRecorder
from loadtest.run import gates

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


def _run(config: str, repeat: int, turns_per_s: float) -> RunResult:
    return RunResult(
        config=config, repeat=repeat, users=1, turns_per_user=1, workers=1, turns=1,
        seconds=1.0, turns_per_s=turns_per_s, p50_ms=1.0, p99_ms=1.0, put_p50_ms=None,
        put_p99_ms=None, put_count=0.0, tx=None, written_bytes=None, stored_bytes=None,
        db_wal_bytes=None, wal_bytes=None, errors=0, lost=0, reconnects=0, cpu_s=1.0,
        cpu_ms_per_turn=1.0, worker_skew=1.0,
    )  # fmt: skip


def test_a_ratio_compares_a_run_with_the_ceiling_runs_around_it() -> None:
    """The machine slowed down halfway through round 0: the ceiling ran at 400 before
    and 100 after the measured run, which ran at 200. Against the mean around it the
    run is on par; against the run before it alone it would look half as fast."""
    ceiling = [_run("memory", 0, 400.0), _run("memory", 1, 100.0)]
    ours = [_run("exit", 0, 200.0)]
    assert _ratios(ours, ceiling, "turns_per_s") == [pytest.approx(1.0)]
    # With the ceiling last in each round, run r sits between ceiling runs r-1 and r.
    assert _ratios([_run("exit", 1, 200.0)], ceiling, "turns_per_s", False) == [pytest.approx(1.0)]
    # A run with a ceiling on one side only is compared with that one.
    assert _ratios([_run("exit", 1, 50.0)], ceiling, "turns_per_s") == [pytest.approx(0.5)]
