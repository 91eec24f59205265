"""One benchmark measurement: a fresh server, a warm-up, the workload, the readings.

Every run starts its own Gunicorn on an empty temporary directory, so file sizes and
counters belong to that run alone; the readings bracket the measured workload only.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtest.benchmark import procstat, profiling
from loadtest.benchmark.pinning import Pinning, pin_server, postmaster_pid
from loadtest.benchmark.procstat import CpuAt
from loadtest.benchmark.workload import WorkloadResult, run_workload, start_time
from loadtest.common import promtext
from loadtest.common.tables import percentile
from service.storage.sqlite.backend import sqlite_file_sizes
from tests.support.server import ServerProcess

PUT_HISTOGRAM = "booking_agent_checkpoint_operation_seconds"
WARMUP_SLOT_BASE = 1_000_000  # far from the measured users' slots (indices wrap)


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    checkpointer: str
    durability: str
    settings: tuple[tuple[str, str], ...] = ()
    mode: str = "wait"  # how the workload sends each turn (workload.MODES)


CONFIGS = {
    "memory": Config("memory", "memory (ceiling)", "memory", "exit"),
    "stock": Config("stock", "stock AsyncSqliteSaver", "sqlite-stock", "exit"),
    "exit": Config("exit", "ours, durability=exit", "sqlite", "exit"),
    "exit-threads": Config(
        "exit-threads",
        "ours, exit, SQLite always on threads",
        "sqlite",
        "exit",
        (("SQLITE_LOOP_FIRST", "false"),),
    ),
    "exit-log": Config(
        "exit-log", "ours, exit, access log on", "sqlite", "exit", (("ACCESS_LOG", "true"),)
    ),
    "exit-background": Config(
        "exit-background", "ours, exit, background run + join", "sqlite", "exit", mode="background"
    ),
    "exit-stream": Config("exit-stream", "ours, exit, stream", "sqlite", "exit", mode="stream"),
    "exit-resumable": Config(
        "exit-resumable", "ours, exit, resumable stream", "sqlite", "exit", mode="resumable"
    ),
    "async": Config("async", "ours, durability=async", "sqlite", "async"),
    "sync": Config("sync", "ours, durability=sync", "sqlite", "sync"),
    "postgres": Config("postgres", "PostgreSQL, durability=exit", "postgres", "exit"),
}

# What `make bench` compares; the other configurations are asked for by name.
DEFAULT_CONFIGS = ("memory", "stock", "exit", "async", "sync", "postgres")

_POSTGRES: list = []  # one throwaway cluster for the whole benchmark, started on first use


def _postgres_server():
    """A PostgreSQL server: TEST_DATABASE_URL, or a throwaway local cluster."""
    if not _POSTGRES:
        import atexit

        from tests.support.postgres import start_postgres

        server, reason = start_postgres()
        if server is None:
            raise SystemExit(f"the postgres configuration needs PostgreSQL: {reason}")
        atexit.register(server.stop)
        _POSTGRES.append(server)
    return _POSTGRES[0]


def pg_stored_payload_bytes(url: str) -> int | None:
    """Checkpoint, blob and pending-write bytes stored in the PostgreSQL database now."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_column_size(checkpoint) + pg_column_size(metadata)),"
            " 0) FROM checkpoints) + (SELECT coalesce(sum(length(blob)), 0) FROM"
            " checkpoint_blobs) + (SELECT coalesce(sum(length(blob)), 0) FROM checkpoint_writes)"
        ).fetchone()
    return int(row[0]) if row else None


@dataclass
class RunResult:
    config: str
    repeat: int
    users: int
    turns_per_user: int
    workers: int
    turns: int
    seconds: float
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    put_p50_ms: float | None
    put_p99_ms: float | None
    put_count: float
    tx: float | None
    written_bytes: float | None
    stored_bytes: int | None
    db_wal_bytes: int | None
    wal_bytes: int | None
    errors: int
    lost: int
    reconnects: int
    cpu_s: float
    cpu_ms_per_turn: float
    worker_skew: float
    # CPU ms per turn split by part of the turn (`--profile`), else empty.
    profile_ms: dict[str, float] = field(default_factory=dict, repr=False)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    put_buckets: list[tuple[float, float]] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        """The CSV columns (raw series left out)."""
        data = asdict(self)
        for key in ("latencies_ms", "put_buckets", "error_samples", "profile_ms"):
            data.pop(key)
        return data


def stored_payload_bytes(db_path: Path) -> int | None:
    """Serialized checkpoint, metadata and pending-write bytes in the file now."""
    from service.storage.sqlite.driver import sqlite3

    if not db_path.exists():
        return None
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        checkpoints = conn.execute(
            "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints"
        ).fetchone()[0]
        writes = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM writes").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return int(checkpoints + writes)


def _scrape(base_url: str) -> promtext.Samples:
    return promtext.parse(httpx.get(f"{base_url}/metrics", timeout=30).text)


def _server_pids(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    return [server.proc.pid, *server.worker_pids()]


def _worker_skew(before: promtext.Samples, after: promtext.Samples, workers: int) -> float:
    """Busiest worker's share of requests x workers: 1.0 is a perfectly even spread."""
    name = "booking_agent_worker_http_requests_total"
    counts: dict[str, float] = {}
    for (n, labels), value in after.items():
        if n == name:
            pid = dict(labels).get("pid", "")
            counts[pid] = value - before.get((n, labels), 0.0)
    served = sum(counts.values())
    return max(counts.values()) / served * workers if served else float("nan")


def measure(
    config: Config,
    *,
    users: int,
    turns: int,
    workers: int,
    latency_ms: int,
    client_procs: int,
    repeat: int = 0,
    pinning: Pinning | None = None,
    profile_dir: Path | None = None,
) -> RunResult:
    """One run; with `profile_dir`, py-spy samples the workers during the workload."""
    env = {
        "CHECKPOINTER": config.checkpointer,
        "CHECKPOINT_DURABILITY": config.durability,
        "OFFLINE_LLM_LATENCY_MS": str(latency_ms),
        "LOG_LEVEL": "warning",
        **dict(config.settings),
    }
    pg_url = None
    if config.checkpointer == "postgres":
        postgres = _postgres_server()
        pg_url = postgres.create_database(f"bench_{repeat}_{users}")
        env["DATABASE_URL"] = pg_url
        if postgres.cluster is not None:  # a server of its own: its helpers pinned too
            postmaster = postmaster_pid(postgres.cluster.data)
            pin_server(pinning, [postmaster] if postmaster else [])

    def stored_now() -> int | None:
        return pg_stored_payload_bytes(pg_url) if pg_url else stored_payload_bytes(db)

    with tempfile.TemporaryDirectory(prefix=f"bench-{config.key}-") as tmp:
        server = ServerProcess(Path(tmp), workers=workers, env=env).start()
        pin_server(pinning, _server_pids(server))
        try:
            run_workload(
                server.base_url,
                max(4, 2 * workers),
                2,
                workers=workers,
                slot_base=WARMUP_SLOT_BASE,
                mode=config.mode,
            )
            db = server.db_path
            stored_before = stored_now()
            samples_before = _scrape(server.base_url)
            # Server CPU counts from the first turn: connection set-up (GET /info on
            # each connection, to balance them over workers) is not a turn's cost.
            start_at = start_time(users)
            pids = _server_pids(server)
            cpu_at_start = CpuAt(start_at, pids)
            sampler = (
                profiling.sampling(
                    server.worker_pids(), profile_dir, f"{config.key}-{repeat}", start_at
                )
                if profile_dir
                else contextlib.nullcontext([])
            )
            with sampler as profile_files:
                work = run_workload(
                    server.base_url,
                    users,
                    turns,
                    workers=workers,
                    client_procs=client_procs,
                    start_at=start_at,
                    mode=config.mode,
                )
            cpu_before = cpu_at_start.result()
            cpu_after = procstat.total_cpu_seconds(_server_pids(server))
            samples_after = _scrape(server.base_url)
            files = sqlite_file_sizes(db) if db.exists() else None
            stored_after = stored_now()
        finally:
            server.stop()
            if pg_url:
                _postgres_server().drop_database(pg_url)
    result = _result(
        config,
        repeat,
        users,
        turns,
        workers,
        work,
        (samples_before, samples_after),
        procstat.cpu_delta(cpu_before, cpu_after),
        files,
        None if stored_before is None or stored_after is None else stored_after - stored_before,
    )
    if profile_files:
        samples = profiling.read_samples(profile_files)
        result.profile_ms = profiling.split(samples, result.cpu_ms_per_turn)
    return result


def _result(
    config: Config,
    repeat: int,
    users: int,
    turns: int,
    workers: int,
    work: WorkloadResult,
    samples: tuple[promtext.Samples, promtext.Samples],
    cpu_s: float,
    files: dict[str, int] | None,
    stored: int | None,
) -> RunResult:
    before, after = samples
    buckets = promtext.bucket_deltas(before, after, PUT_HISTOGRAM, operation="put")
    put_count = buckets[-1][1] if buckets else 0.0
    has_tx = any(n == "booking_agent_storage_write_transactions_total" for n, _ in after)
    has_bytes = promtext.total(after, "booking_agent_checkpoint_written_bytes_total") > 0
    done = work.turns
    return RunResult(
        config=config.key,
        repeat=repeat,
        users=users,
        turns_per_user=turns,
        workers=workers,
        turns=done,
        seconds=round(work.seconds, 3),
        turns_per_s=done / work.seconds,
        p50_ms=percentile(work.latencies_ms, 50),
        p99_ms=percentile(work.latencies_ms, 99),
        put_p50_ms=promtext.quantile(0.5, buckets) * 1000 if put_count else None,
        put_p99_ms=promtext.quantile(0.99, buckets) * 1000 if put_count else None,
        put_count=put_count,
        tx=promtext.delta(before, after, "booking_agent_storage_write_transactions_total")
        if has_tx
        else None,
        written_bytes=promtext.delta(before, after, "booking_agent_checkpoint_written_bytes_total")
        if has_bytes
        else None,
        stored_bytes=stored,
        db_wal_bytes=files["db"] + files["wal"] if files else None,
        wal_bytes=files["wal"] if files else None,
        errors=work.errors,
        lost=work.lost,
        reconnects=work.reconnects,
        cpu_s=round(cpu_s, 3),
        cpu_ms_per_turn=cpu_s * 1000 / done if done else float("nan"),
        worker_skew=_worker_skew(before, after, workers),
        latencies_ms=work.latencies_ms,
        put_buckets=buckets,
        error_samples=work.samples,
    )
