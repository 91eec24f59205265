"""One measurement of a runtime: a fresh server, a warm-up, the workload, the readings.

The load is the project's own (`loadtest.benchmark.workload.run_workload`, one client
process), so every runtime gets the same five-step dialogue, users and turns. Two
things are added around it, for the peers only, by swapping the workload's
`Connection` class for the duration of a run:

- a peer-specific thread id (LangGraph's in-memory runtime wants UUIDs), and
- a record of every acknowledged turn (HTTP 200 with an AI reply: what the workload
  counts as a turn), so that after the load GET /threads/{id}/state can show that
  each acknowledged human message is in the thread's stored state.

Server CPU counts from the shared start time to the end of the workload, over every
process of the peer's session and, for Aegra, PostgreSQL's postmaster and backends.
Ours is measured by the project's runner (`measure(CONFIGS["exit"], ...)`), whose
own check is in-band: every reply must hold exactly the human messages sent so far.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtest.benchmark import procstat, workload
from loadtest.benchmark.httpclient import Connection
from loadtest.benchmark.peers.servers import PeerServer
from loadtest.benchmark.pinning import Pinning
from loadtest.benchmark.procstat import CpuAt
from loadtest.benchmark.runner import CONFIGS, WARMUP_SLOT_BASE, RunResult, measure
from loadtest.benchmark.workload import run_workload, start_time
from loadtest.common import dialogue as d
from loadtest.common.tables import percentile

OURS = "ours"
OURS_CONFIG = CONFIGS["exit"]
_THREAD_PATH = re.compile(r"^/threads/([^/]+)(/.*)?$")


@dataclass
class Result:
    """One run of one runtime; CPU and the state check as the report shows them."""

    runtime: str
    repeat: int
    users: int
    turns_per_user: int
    turns: int
    seconds: float
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    lost_in_band: int
    reconnects: int
    cpu_s: float
    cpu_ms_per_turn: float
    db_cpu_ms_per_turn: float | None  # PostgreSQL's part of cpu_ms_per_turn (Aegra)
    check: str  # how persistence of acknowledged turns was checked
    checked_threads: int = 0
    checked_turns: int = 0
    missing_turns: int = 0  # acknowledged, yet not in the thread's state
    unchecked_turns: int = 0  # acknowledged, on threads whose state was not read
    extra_turns: int = 0  # in the state, never acknowledged (a failed turn that wrote)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list, repr=False)

    @property
    def lost(self) -> int:
        return max(self.missing_turns, self.lost_in_band)

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data["error_samples"] = " | ".join(self.error_samples[:3])
        return data


def measure_ours(
    *, users: int, turns: int, workers: int, latency_ms: int, repeat: int, pinning: Pinning | None
) -> Result:
    """This project's service, as `make bench` runs its `exit` configuration."""
    run: RunResult = measure(
        OURS_CONFIG,
        users=users,
        turns=turns,
        workers=workers,
        latency_ms=latency_ms,
        client_procs=1,
        repeat=repeat,
        pinning=pinning,
    )
    return Result(
        runtime=OURS,
        repeat=repeat,
        users=users,
        turns_per_user=turns,
        turns=run.turns,
        seconds=run.seconds,
        turns_per_s=run.turns_per_s,
        p50_ms=run.p50_ms,
        p99_ms=run.p99_ms,
        errors=run.errors,
        lost_in_band=run.lost,
        reconnects=run.reconnects,
        cpu_s=run.cpu_s,
        cpu_ms_per_turn=run.cpu_ms_per_turn,
        db_cpu_ms_per_turn=None,
        check="in-band (each reply's state)",
        checked_turns=run.turns,
        latencies_ms=run.latencies_ms,
        error_samples=run.error_samples,
    )


class Recorder:
    """Maps the workload's thread names to the peer's ids; keeps what was acknowledged."""

    def __init__(self, thread_id: Callable[[str], str]) -> None:
        self.thread_id = thread_id
        self.acked: dict[str, list[str]] = {}  # peer thread id -> human messages, in order

    def rewrite(self, path: str) -> str:
        match = _THREAD_PATH.match(path)
        if not match:
            return path
        return f"/threads/{self.thread_id(match.group(1))}{match.group(2) or ''}"

    def connection_class(self) -> type[Connection]:
        recorder = self

        class PeerConnection(Connection):
            async def request(self, method: str, path: str, payload: Any = None) -> Any:
                path = recorder.rewrite(path)
                status, values = await super().request(method, path, payload)
                if (
                    method == "POST"
                    and path.endswith("/runs/wait")
                    and status == 200
                    and d.last_ai_text(values) is not None  # the workload's "turn"
                ):
                    thread = path.split("/")[2]
                    text = payload["input"]["messages"][0]["content"]
                    recorder.acked.setdefault(thread, []).append(text)
                return status, values

        return PeerConnection


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """The workload opens its connections through `recorder` while this lasts."""
    original = workload.Connection
    workload.Connection = recorder.connection_class()  # type: ignore[misc]
    try:
        yield recorder
    finally:
        workload.Connection = original  # type: ignore[misc]


def check_state(base_url: str, acked: dict[str, list[str]], sample: int) -> dict[str, int]:
    """GET /threads/{id}/state for `sample` threads (0: all); count missing messages."""
    threads = sorted(acked)
    chosen = threads if sample <= 0 else threads[:sample]
    out = {"checked_threads": 0, "checked_turns": 0, "missing_turns": 0, "extra_turns": 0}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for thread in chosen:
            response = client.get(f"/threads/{thread}/state")
            if response.status_code != 200:
                continue
            stored = Counter(d.human_texts(response.json().get("values")))
            sent = Counter(acked[thread])
            out["checked_threads"] += 1
            out["checked_turns"] += sum(sent.values())
            out["missing_turns"] += sum((sent - stored).values())
            out["extra_turns"] += sum((stored - sent).values())
    out["unchecked_turns"] = sum(len(v) for v in acked.values()) - out["checked_turns"]
    return out


def measure_peer(
    make: Callable[[Path], PeerServer],
    *,
    users: int,
    turns: int,
    repeat: int,
    pinning: Pinning | None,
    check_threads: int = 0,
) -> Result:
    """One run of a peer: fresh server and data, warm-up, measured load, state check."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        server = make(Path(tmp))
        server.start(pinning)
        try:
            with recording(Recorder(server.thread_id)):
                run_workload(server.base_url, 4, 2, workers=1, slot_base=WARMUP_SLOT_BASE)
            recorder = Recorder(server.thread_id)
            start_at = start_time(users)
            db_before = set(server.db_pids())
            cpu_at_start = CpuAt(start_at, server.pids())
            with recording(recorder):
                work = run_workload(
                    server.base_url, users, turns, workers=1, client_procs=1, start_at=start_at
                )
            before = cpu_at_start.result()
            after = procstat.total_cpu_seconds(server.pids())
            db = db_before | set(server.db_pids())
            checked = check_state(server.base_url, recorder.acked, check_threads)
        finally:
            server.stop()
    cpu_s = procstat.cpu_delta(before, after)
    db_cpu_s = procstat.cpu_delta(
        {p: v for p, v in before.items() if p in db}, {p: v for p, v in after.items() if p in db}
    )
    done = work.turns
    return Result(
        runtime=server.key,
        repeat=repeat,
        users=users,
        turns_per_user=turns,
        turns=done,
        seconds=round(work.seconds, 3),
        turns_per_s=done / work.seconds,
        p50_ms=percentile(work.latencies_ms, 50),
        p99_ms=percentile(work.latencies_ms, 99),
        errors=work.errors,
        lost_in_band=work.lost,
        reconnects=work.reconnects,
        cpu_s=round(cpu_s, 3),
        cpu_ms_per_turn=cpu_s * 1000 / done if done else float("nan"),
        db_cpu_ms_per_turn=db_cpu_s * 1000 / done if db and done else None,
        check="in-band + GET /threads/{id}/state",
        latencies_ms=work.latencies_ms,
        error_samples=work.samples,
        **checked,
    )
