"""The benchmark's ways of sending a turn, against a real server: each one books,
cancels and answers through the whole five-step cycle with every turn in the state,
and the cost table pairs each with its reference."""

from __future__ import annotations

import pytest

from loadtest.benchmark import report
from loadtest.benchmark.runner import CONFIGS, measure
from loadtest.benchmark.workload import last_values

pytestmark = pytest.mark.timeout(240)


def test_the_last_values_event_is_the_state() -> None:
    body = (
        'event: metadata\ndata: {"run_id": "r"}\n\n'
        'event: values\ndata: {"messages": [1]}\n\n'
        'id: 3\r\nevent: values\r\ndata: {"messages": [1, 2]}\r\n\r\n'
    )
    assert last_values(body) == {"messages": [1, 2]}
    assert last_values("event: end\ndata: null\n\n") is None
    assert last_values(None) is None


def test_every_mode_keeps_every_turn() -> None:
    keys = ("exit", "exit-background", "exit-stream", "exit-resumable")
    runs = [
        measure(CONFIGS[key], users=4, turns=5, workers=2, latency_ms=0, client_procs=1)
        for key in keys
    ]
    for run in runs:
        assert (run.config, run.turns, run.errors, run.lost) == (run.config, 20, 0, 0)
    table = report.cost_table(runs)
    assert "ours, exit, background run + join" in table
    assert "ours, exit, resumable stream" in table
