"""Where a turn's server CPU goes: py-spy samples every worker during the measured
workload (sampling from outside, no change to the service), and the samples are
grouped into the parts of a turn.

Each sample is filed under the innermost frame that belongs to a part: a JSON encoder
called by the checkpoint serializer counts as serialization, a SQLite call made by the
saver as SQLite. Samples of a thread that waits (on a lock, an empty queue, the event
loop's `select`: WAIT_LINES) are left out; the kernel's count of the workers' CPU per
turn is then split by the parts' shares of the samples.
"""

from __future__ import annotations

import asyncio.base_events
import concurrent.futures.thread
import contextlib
import inspect
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE_HZ = 250

# (part, the source paths that belong to it), innermost match first. py-spy names a
# file by its path below its sys.path entry, a namespace package's (langgraph) below
# the package: `pregel/main.py`, `checkpoint/serde/jsonplus.py`, `service/api/deps.py`.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("checkpoint serialization",
     ("checkpoint/serde/", "ormsgpack", "service/storage/sqlite/serde")),
    ("in-memory checkpoints", ("checkpoint/memory/", "store/memory/", "service/storage/bench/")),
    ("PostgreSQL", ("service/storage/postgres/", "psycopg", "store/postgres/")),
    ("SQLite: checkpoints, thread and run records, store",
     ("service/storage/sqlite/", "pysqlite3/", "sqlite3/", "store/sqlite/")),
    ("storage, shared (guard, records, store)", ("service/storage/",)),
    ("bookings", ("service/bookings/",)),
    ("agent and offline model",
     ("service/agent/", "langchain_core/language_models/", "langchain_core/messages/")),
    ("graph runtime (pregel)",
     ("pregel/", "graph/", "channels/", "_internal/", "prebuilt/", "runtime.py", "types.py",
      "langchain_core/runnables/", "langchain_core/callbacks/", "langchain_core/tracers/",
      "langchain_core/tools/")),
    ("runs: lifecycle, streams, records", ("service/runs/",)),
    ("metrics and logs", ("prometheus_client/", "service/observability/", "logging/")),
    ("API: routes, validation, encoding",
     ("service/api/", "service/schemas/", "fastapi/", "pydantic/", "pydantic_core/")),
    ("HTTP server (uvicorn, starlette)",
     ("uvicorn/", "uvicorn_worker/", "starlette/", "h11/", "httptools/", "anyio/")),
    ("event loop: tasks, futures, thread hand-offs",
     ("asyncio/", "concurrent/futures/", "threading.py", "selectors.py")),
)  # fmt: skip
OTHER = "other (start-up, garbage collection)"

# Where a thread waits (the event loop's `select`, an idle pool thread, a lock): py-spy
# cannot always tell such a thread from a running one without pausing the process, so
# a sample whose innermost frame is one of these lines is idle and left out.
_WAITS = (
    (asyncio.base_events.BaseEventLoop._run_once, "asyncio/base_events.py", "selector.select("),
    (concurrent.futures.thread._worker, "concurrent/futures/thread.py", "work_queue.get("),
    (threading.Condition.wait, "threading.py", "waiter.acquire("),
    (selectors.DefaultSelector.select, "selectors.py", "self._selector.poll("),
)


def _wait_lines() -> frozenset[tuple[str, int]]:
    found = set()
    for function, path, text in _WAITS:
        lines, first = inspect.getsourcelines(function)
        found.update((path, first + n) for n, line in enumerate(lines) if text in line)
    return frozenset(found)


WAIT_LINES = _wait_lines()


def _where(frame: str) -> tuple[str, int]:
    """(path, line) of one py-spy frame, `function (path:line)`."""
    inside = frame[frame.rfind("(") + 1 :].rstrip(")")
    path, _, line = inside.rpartition(":")
    return path, int(line) if line.isdigit() else 0


def _belongs(path: str, fragment: str) -> bool:
    return path.startswith(fragment) or f"/{fragment}" in path


def available() -> str | None:
    """The py-spy binary, if installed (it comes with the project's lock file)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(
    pids: list[int], out_dir: Path, name: str, start_at: float | None = None
) -> Iterator[list[Path]]:
    """py-spy on each pid from `start_at` (time.monotonic(); the measured workload's
    start, after its connections are set up) to the end of the block; yields the raw
    output files, complete once the block has ended."""
    binary = available()
    if binary is None:
        raise SystemExit("--profile needs py-spy: make venv installs it (requirements.lock)")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}-{pid}.txt" for pid in pids]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        for pid, path in zip(pids, files, strict=True):
            procs.append(
                subprocess.Popen(
                    [binary, "record", "--pid", str(pid), "--rate", str(RATE_HZ),
                     "--nonblocking", "--format", "raw", "--output", str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip

    delay = 0.0 if start_at is None else max(0.0, start_at - time.monotonic())
    timer = threading.Timer(delay, start)
    timer.start()
    try:
        yield files
    finally:
        timer.cancel()
        timer.join()
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def is_idle(stack: str) -> bool:
    """Whether a sampled stack (root first, `;`-separated) is a thread waiting."""
    return _where(stack.rsplit(";", 1)[-1]) in WAIT_LINES


def part_of(stack: str) -> str:
    """The part one sampled stack (root first, `;`-separated) belongs to."""
    for frame in reversed(stack.split(";")):
        path, _ = _where(frame)
        for part, fragments in PARTS:
            if any(_belongs(path, fragment) for fragment in fragments):
                return part
    return OTHER


def read_samples(files: list[Path]) -> Counter[str]:
    """Samples per part, over py-spy's raw (collapsed-stack) files."""
    counts: Counter[str] = Counter()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit() and not is_idle(stack):
                counts[part_of(stack)] += int(count)
    return counts


def split(counts: Counter[str], cpu_ms_per_turn: float) -> dict[str, float]:
    """The measured CPU per turn, split by each part's share of the samples.

    Samples are not CPU time themselves: a worker that is ready to run but waits for
    the CPU (two workers on one pinned core) is sampled too, where it was stopped.
    """
    total = sum(counts.values())
    if not total:
        return {}
    return {part: cpu_ms_per_turn * samples / total for part, samples in counts.items()}
