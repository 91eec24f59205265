"""The benchmark's profile (`--profile`): py-spy samples the real workers during the
workload, each sample is filed under the innermost part of a turn it belongs to, and
the table compares each configuration with the ceiling part by part."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.benchmark import profiling, report
from loadtest.benchmark.runner import CONFIGS, measure

SAVER = "aput (service/storage/sqlite/saver.py:520)"
SERDE = "dumps_typed (checkpoint/serde/jsonplus.py:80)"
PREGEL = "tick (pregel/_loop.py:400)"
ROUTE = "wait (service/api/routes/runs.py:60)"
SQLITE = "SQLite: checkpoints, thread and run records, store"
JSON = "encode (json/encoder.py:200)"


def test_a_sample_belongs_to_its_innermost_part() -> None:
    assert profiling.part_of(f"{ROUTE};{PREGEL};{SAVER};{SERDE};{JSON}") == (
        "checkpoint serialization"
    )
    assert profiling.part_of(f"{ROUTE};{PREGEL};{SAVER}") == SQLITE
    assert profiling.part_of(f"{ROUTE};{PREGEL};{JSON}") == "graph runtime (pregel)"
    loop = "_run_once (asyncio/base_events.py:1922)"
    assert profiling.part_of(f"{loop};select (selectors.py:468)") == (
        "event loop: tasks, futures, thread hand-offs"
    )
    assert profiling.part_of(f"{loop};{ROUTE};{JSON}") == "API: routes, validation, encoding"
    assert profiling.part_of("<module> (<string>:1)") == profiling.OTHER


def test_a_waiting_thread_is_idle() -> None:
    (path, line), *_ = sorted(profiling.WAIT_LINES)
    assert profiling.is_idle(f"{ROUTE};wait ({path}:{line})")
    assert not profiling.is_idle(f"{ROUTE};wait ({path}:{line + 1000})")
    assert not profiling.is_idle(f"{ROUTE};{SAVER}")


def test_samples_split_the_measured_cpu_by_part(tmp_path: Path) -> None:
    raw = tmp_path / "exit-0-1.txt"
    (path, line), *_ = sorted(profiling.WAIT_LINES)
    idle = f"{ROUTE};wait ({path}:{line}) 90\n"
    raw.write_text(f"{ROUTE};{SAVER} 50\n{ROUTE};{PREGEL} 25\n{ROUTE};{PREGEL};{SAVER} 25\n{idle}")
    counts = profiling.read_samples([raw, tmp_path / "missing.txt"])
    assert counts == {SQLITE: 75, "graph runtime (pregel)": 25}
    per_turn = profiling.split(counts, cpu_ms_per_turn=8.0)
    assert per_turn == {SQLITE: pytest.approx(6.0), "graph runtime (pregel)": pytest.approx(2.0)}


@pytest.mark.skipif(profiling.available() is None, reason="py-spy is not installed")
@pytest.mark.timeout(180)
def test_a_profiled_run_accounts_for_the_workers_cpu(tmp_path: Path) -> None:
    runs = [
        measure(
            CONFIGS[key],
            users=8,
            turns=5,
            workers=2,
            latency_ms=0,
            client_procs=1,
            profile_dir=tmp_path,
        )
        for key in ("memory", "exit")
    ]
    memory, ours = runs
    assert ours.errors == 0 and ours.lost == 0
    assert SQLITE in ours.profile_ms
    assert memory.profile_ms and memory.errors == 0
    assert sum(ours.profile_ms.values()) == pytest.approx(ours.cpu_ms_per_turn)
    table = report.profile_table(runs)
    assert "ours, durability=exit - memory (ceiling)" in table.splitlines()[0]
    assert table.splitlines()[-1].startswith("| total")
