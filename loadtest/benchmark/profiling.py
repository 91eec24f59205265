"""Where a turn's server CPU goes: py-spy samples every worker during the measured
workload (sampling from outside, no change to the service), and the samples are
grouped into the parts of a turn.

Each sample is filed under the innermost frame that belongs to a part: a JSON encoder
called by the checkpoint serializer counts as serialization, a SQLite call made by the
saver as SQLite. py-spy leaves out threads that are idle (waiting on a lock, a socket,
the event loop's `epoll`), so samples per turn read as CPU per turn.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE_HZ = 250

# (part, path fragments of the frames that belong to it), innermost match first.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "checkpoint serialization",
        ("langgraph/checkpoint/serde/", "ormsgpack", "storage/sqlite/serde"),
    ),
    ("in-memory checkpoints", ("langgraph/checkpoint/memory/", "service/storage/bench/")),
    ("PostgreSQL", ("service/storage/postgres/", "psycopg")),
    ("SQLite: checkpoints, thread and run records", ("service/storage/sqlite/", "sqlite3/")),
    ("storage, shared (guard, records, store)", ("service/storage/",)),
    ("bookings", ("service/bookings/",)),
    (
        "agent and offline model",
        ("service/agent/", "langchain_core/language_models", "langchain_core/messages"),
    ),
    (
        "graph runtime (pregel)",
        (
            "langgraph/pregel/",
            "langgraph/graph/",
            "langgraph/channels/",
            "langgraph/_internal/",
            "langgraph/utils/",
            "langchain_core/runnables/",
            "langchain_core/callbacks/",
            "langchain_core/tracers/",
        ),
    ),
    ("runs: lifecycle, streams, records", ("service/runs/",)),
    ("metrics and logs", ("prometheus_client/", "service/observability/", "/logging/")),
    (
        "API: routes, validation, encoding",
        ("service/api/", "service/schemas/", "fastapi/", "pydantic"),
    ),
    ("HTTP server (uvicorn, starlette)", ("uvicorn", "starlette/", "h11/", "httptools", "anyio/")),
    (
        "event loop: tasks, futures, thread hand-offs",
        ("asyncio/", "concurrent/futures/", "/threading.py", "/selectors.py"),
    ),
)
OTHER = "other (start-up, garbage collection)"


def available() -> str | None:
    """The py-spy binary, if installed (it comes with the project's lock file)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(pids: list[int], out_dir: Path, name: str) -> Iterator[list[Path]]:
    """py-spy on each pid for the duration of the block; yields the raw output files,
    complete once the block has ended."""
    binary = available()
    if binary is None:
        raise SystemExit("--profile needs py-spy: make venv installs it (requirements.lock)")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}-{pid}.txt" for pid in pids]
    procs = [
        subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking",
             "--format", "raw", "--output", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(pids, files, strict=True)
    ]  # fmt: skip
    try:
        yield files
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def part_of(stack: str) -> str:
    """The part one sampled stack (root first, `;`-separated) belongs to."""
    frames = stack.split(";")
    for frame in reversed(frames):
        for part, fragments in PARTS:
            if any(fragment in frame for fragment in fragments):
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
            if stack and count.isdigit():
                counts[part_of(stack)] += int(count)
    return counts


def ms_per_turn(counts: Counter[str], turns: int) -> dict[str, float]:
    """Sampled CPU milliseconds per turn, by part."""
    if not turns:
        return {}
    return {part: samples * 1000 / RATE_HZ / turns for part, samples in counts.items()}
