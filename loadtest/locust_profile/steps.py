"""Per-step statistics recorded inside the Locust process.

Locust's own CSVs aggregate over the whole run (or over a rolling window), while the
load profile is judged step by step: each request is filed under the user count
the shape was driving when it finished. The runner reads what this writes.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.common.tables import percentile, write_csv

TURN = "/threads/[id]/runs/wait"  # the gated request: one normal conversation turn
CHECK = "CHECK"  # request_type of client-side verification failures (lost turn, ...)


@dataclass
class _Series:
    times_ms: list[float] = field(default_factory=list)
    failures: int = 0
    expected_409: int = 0
    status_5xx: int = 0


class StepRecorder:
    """Collects every request and check under the current step."""

    def __init__(self) -> None:
        self.step = 0
        self.step_started: dict[int, float] = {}
        self.ended_at: float | None = None
        self.series: dict[tuple[int, str, str], _Series] = defaultdict(_Series)
        self.outcomes: Counter[str] = Counter()

    def begin_step(self, users: int) -> None:
        if users != self.step:
            self.step = users
            self.step_started.setdefault(users, time.time())

    def record(
        self,
        request_type: str,
        name: str,
        response_time_ms: float,
        status: int,
        failed: bool,
        expected_409: bool = False,
    ) -> None:
        series = self.series[(self.step, request_type, name)]
        if request_type != CHECK:
            series.times_ms.append(response_time_ms)
        series.failures += int(failed)
        series.expected_409 += int(expected_409)
        series.status_5xx += int(status >= 500)

    def outcome(self, what: str) -> None:
        self.outcomes[what] += 1

    # --- output ----------------------------------------------------------------------
    def _durations(self) -> dict[int, float]:
        end = self.ended_at or time.time()
        starts = sorted(self.step_started.items(), key=lambda item: item[1])
        durations = {}
        for index, (users, started) in enumerate(starts):
            stop = starts[index + 1][1] if index + 1 < len(starts) else end
            durations[users] = max(stop - started, 1e-9)
        return durations

    def rows(self) -> list[dict[str, Any]]:
        durations = self._durations()
        rows = []
        steps = sorted({key[0] for key in self.series} | set(durations))
        for step in steps:
            duration = durations.get(step, 1e-9)
            keys = sorted(k for k in self.series if k[0] == step)
            merged = _Series()
            for key in keys:
                series = self.series[key]
                rows.append(_row(step, key[1], key[2], series, duration))
                if key[1] != CHECK:
                    merged.times_ms += series.times_ms
                merged.failures += series.failures
                merged.expected_409 += series.expected_409
                merged.status_5xx += series.status_5xx
            rows.append(_row(step, "", "Aggregated", merged, duration))
        return rows

    def summary(self) -> dict[str, Any]:
        turns = [
            t for (_, kind, name), s in self.series.items() if name == TURN for t in s.times_ms
        ]
        failures: Counter[str] = Counter()
        for (_, kind, name), series in self.series.items():
            if series.failures:
                failures[f"{kind} {name}"] += series.failures
        return {
            "turns": len(turns),
            "turn_p50_ms": percentile(turns, 50),
            "turn_p95_ms": percentile(turns, 95),
            "turn_p99_ms": percentile(turns, 99),
            "failures": sum(failures.values()),
            "failures_by_name": dict(failures),
            "status_5xx": sum(s.status_5xx for s in self.series.values()),
            "expected_409": sum(s.expected_409 for s in self.series.values()),
            "outcomes": dict(self.outcomes),
            "steps": sorted(self.step_started),
        }

    def write(self, prefix: Path) -> None:
        self.ended_at = self.ended_at or time.time()
        write_csv(Path(f"{prefix}_steps.csv"), self.rows())
        Path(f"{prefix}_summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")


def _row(step: int, kind: str, name: str, series: _Series, duration: float) -> dict[str, Any]:
    times = series.times_ms
    requests = len(times) if kind != CHECK else 0
    return {
        "users": step,
        "type": kind,
        "name": name,
        "requests": requests,
        "failures": series.failures,
        "expected_409": series.expected_409,
        "status_5xx": series.status_5xx,
        "rps": round(requests / duration, 2),
        "p50_ms": round(percentile(times, 50), 1) if times else "",
        "p95_ms": round(percentile(times, 95), 1) if times else "",
        "p99_ms": round(percentile(times, 99), 1) if times else "",
        "max_ms": round(max(times), 1) if times else "",
        "duration_s": round(duration, 1),
    }
