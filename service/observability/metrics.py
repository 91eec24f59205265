"""Prometheus metrics, summed over all Gunicorn workers.

prometheus_client's multiprocess mode: every worker writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR` (set by `deploy/gunicorn.conf.py` before this module is
imported, and emptied at server start), and `/metrics` merges them: counters and
histograms are summed over every worker that ever ran, dead ones included. Gauges declare
how they merge: live values per process (`livesum`, `liveall`) vanish with the
worker; file sizes are read at scrape time by whichever worker answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

PREFIX = "booking_agent"

# A command-line tool started with PROMETHEUS_MULTIPROC_DIR set (inherited from the
# server's environment) must not crash because only Gunicorn creates the folder.
_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _multiproc_dir:
    os.makedirs(_multiproc_dir, exist_ok=True)

# From about 50 µs (a small WAL commit) to several seconds (lock waits).
STORAGE_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
PAYLOAD_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)

CHECKPOINT_OP_SECONDS = Histogram(
    f"{PREFIX}_checkpoint_operation_seconds",
    "Latency of checkpointer operations, including waits for the write lock.",
    ["operation", "backend"],
    buckets=STORAGE_BUCKETS,
)
CHECKPOINT_WRITE_BYTES = Counter(
    f"{PREFIX}_checkpoint_written_bytes",
    "Serialized checkpoint and pending-write payload bytes written.",
    ["backend"],
)
CHECKPOINT_PAYLOAD_BYTES = Histogram(
    f"{PREFIX}_checkpoint_payload_bytes",
    "Size of each serialized checkpoint written.",
    ["backend"],
    buckets=PAYLOAD_BUCKETS,
)
CHECKPOINT_CACHE = Counter(
    f"{PREFIX}_checkpoint_cache_reads",
    "Latest-checkpoint reads served from this worker's decoded copy (hit) or decoded (miss).",
    ["backend", "result"],
)
WRITE_TRANSACTIONS = Counter(
    f"{PREFIX}_storage_write_transactions",
    "Committed write transactions on the checkpoint store.",
    ["backend"],
)
STORAGE_BUSY_ERRORS = Counter(
    f"{PREFIX}_storage_busy_errors",
    "Operations that failed because the database stayed locked past busy_timeout.",
    ["backend", "operation"],
)
STORAGE_DEFERRED_OPERATIONS = Counter(
    f"{PREFIX}_storage_deferred_operations",
    "Point reads and single-transaction writes that found a lock taken, so ran on "
    "their connection's thread instead of the event loop.",
    ["backend", "operation"],
)
# The operations that try the event loop first.
LOOP_FIRST_OPERATIONS = (
    "get",
    "thread",
    "put",
    "put_writes",
    "run",
    "store",
    "assistant",
    "queue",
)

# Label values known in advance. Their series are created at zero when a worker
# starts (`init_series`), so `rate()` and alerts see 0 instead of no data.
CHECKPOINT_OPERATIONS = (
    "get",
    "put",
    "put_writes",
    "list",
    "delete",
    "delete_for_runs",
    "copy_thread",
    "prune",
    "thread",
    "run",
    "queue",
    "assistant",
    "store",
)
GUARD_REJECTION_REASONS = ("reject", "timeout")
MAINTENANCE_RESULTS = ("ok", "error")
WEBHOOK_RESULTS = ("delivered", "rejected", "failed", "refused")
MAINTENANCE_KINDS = ("expired_threads", "checkpoints", "run_events", "store_items")

CRON_RESULTS = ("started", "refused", "missed")
CRON_FIRINGS = Counter(
    f"{PREFIX}_cron_firings",
    "Cron firings: started (a background run was accepted), refused (its thread is gone "
    "or busy, or its run is invalid), missed (due while no worker led; skipped, not replayed).",
    ["result"],
)
RUNS_RECOVERED = Counter(
    f"{PREFIX}_runs_recovered",
    "Runs left `running` by a worker that died, marked `error` by the next worker to take "
    "their thread or by the maintenance leader.",
)
GUARD_WAITS = Counter(
    f"{PREFIX}_thread_guard_waits",
    "Runs that had to wait for another run on the same thread (enqueue).",
)
GUARD_REJECTIONS = Counter(
    f"{PREFIX}_thread_guard_rejections",
    "Runs refused because the thread was busy (reject: 409, or enqueue timeout).",
    ["reason"],
)
GUARD_WAIT_SECONDS = Histogram(
    f"{PREFIX}_thread_guard_wait_seconds",
    "Time a run waited for its thread to become free.",
    buckets=STORAGE_BUCKETS,
)

RUN_SECONDS = Histogram(
    f"{PREFIX}_run_duration_seconds",
    "Duration of one run (one conversational turn), by outcome.",
    ["outcome"],
    buckets=REQUEST_BUCKETS,
)
RUNS_IN_FLIGHT = Gauge(
    f"{PREFIX}_runs_in_flight",
    "Runs executing right now, summed over live workers.",
    multiprocess_mode="livesum",
)
RUN_QUEUE_DEPTH = Gauge(
    f"{PREFIX}_run_queue_depth",
    "Background runs accepted and not yet started (pending), read by each worker's queue.",
    multiprocess_mode="mostrecent",
)
RUN_QUEUE_OLDEST_SECONDS = Gauge(
    f"{PREFIX}_run_queue_oldest_seconds",
    "How long the oldest pending background run has waited.",
    multiprocess_mode="mostrecent",
)
RUN_START_SECONDS = Histogram(
    f"{PREFIX}_run_start_latency_seconds",
    "From a background run's acceptance to its start on some worker.",
    buckets=REQUEST_BUCKETS,
)
BACKGROUND_RUNS_ACTIVE = Gauge(
    f"{PREFIX}_background_runs_active",
    "Background runs executing now, summed over live workers.",
    multiprocess_mode="livesum",
)
CANCEL_ACTIONS = ("interrupt", "rollback")
RUN_CANCELLATIONS = Counter(
    f"{PREFIX}_run_cancellations",
    "Runs cancelled (cancel endpoints, multitask_strategy interrupt/rollback), by action "
    "and by what the run was doing: pending (never started) or running (stopped).",
    ["action", "stage"],
)
DISCONNECT_ACTIONS = ("not_started", "cancelled", "continued", "shielded")
RUN_CLIENT_DISCONNECTS = Counter(
    f"{PREFIX}_run_client_disconnects",
    "Runs whose client left, by what the run did: not_started (it was waiting for its "
    "thread), cancelled, continued (on_disconnect=continue), shielded (a side effect had "
    "begun, so it ran to the end).",
    ["action"],
)
LLM_CALL_SECONDS = Histogram(
    f"{PREFIX}_llm_call_seconds",
    "Latency of one chat-model call.",
    ["provider"],
    buckets=REQUEST_BUCKETS,
)
TOOL_CALLS = Counter(
    f"{PREFIX}_tool_calls",
    "Tool calls by tool and outcome (ok, error, rejected).",
    ["tool", "outcome"],
)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
)
HTTP_READ_PHASES = ("headers", "body")
HTTP_READ_TIMEOUTS = Counter(
    f"{PREFIX}_http_read_timeouts",
    "Connections closed because a request's headers or body did not arrive in time.",
    ["phase"],
)
WORKER_REQUESTS = Counter(
    f"{PREFIX}_worker_http_requests",
    "HTTP requests served per worker process.",
    ["pid"],
)
# `liveall` keeps one series per live worker file and labels it with that file's pid,
# which is the same pid this label carries; the label also names the worker when
# multiprocess mode is off.
WORKER_UP = Gauge(
    f"{PREFIX}_worker_up",
    "1 for each live worker process.",
    ["pid"],
    multiprocess_mode="liveall",
)

# Read at scrape time from the files on disk; any worker gives the same answer.
SQLITE_FILE_BYTES = Gauge(
    f"{PREFIX}_sqlite_file_bytes",
    "Size of the SQLite database, -wal and -shm files.",
    ["file"],
    multiprocess_mode="mostrecent",
)
THREADS_BY_STATUS = Gauge(
    f"{PREFIX}_threads",
    "Threads by stored status: interrupted (waiting for a person's approval) or error.",
    ["status"],
    multiprocess_mode="mostrecent",
)
SQLITE_FREELIST_PAGES = Gauge(
    f"{PREFIX}_sqlite_freelist_pages",
    "Unused pages in the SQLite database file.",
    multiprocess_mode="mostrecent",
)
SQLITE_PAGE_SIZE = Gauge(
    f"{PREFIX}_sqlite_page_size_bytes",
    "Page size of the SQLite database file.",
    multiprocess_mode="mostrecent",
)
BUILD_INFO = Gauge(
    f"{PREFIX}_build_info",
    "Versions of the service and its storage, always 1.",
    ["version", "langgraph", "sqlite", "sqlite_driver", "backend", "python"],
    multiprocess_mode="max",
)


def init_series(backend: str) -> None:
    """Zero series for rare events, so dashboards and alerts read 0 rather than nothing."""
    for reason in GUARD_REJECTION_REASONS:
        GUARD_REJECTIONS.labels(reason=reason)
    for action in DISCONNECT_ACTIONS:
        RUN_CLIENT_DISCONNECTS.labels(action=action)
    for result in CRON_RESULTS:
        CRON_FIRINGS.labels(result=result)
    for action in CANCEL_ACTIONS:
        for stage in ("pending", "running"):
            RUN_CANCELLATIONS.labels(action=action, stage=stage)
    for phase in HTTP_READ_PHASES:
        HTTP_READ_TIMEOUTS.labels(phase=phase)
    for operation in CHECKPOINT_OPERATIONS:
        STORAGE_BUSY_ERRORS.labels(backend=backend, operation=operation)
    for result in MAINTENANCE_RESULTS:
        MAINTENANCE_SWEEPS.labels(result=result)
    for kind in MAINTENANCE_KINDS:
        MAINTENANCE_DELETED.labels(kind=kind)
    for result in WEBHOOK_RESULTS:
        WEBHOOKS.labels(result=result)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render() -> tuple[bytes, str]:
    """Exposition text for all workers (multiprocess) or this process alone."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Called by Gunicorn's `child_exit`: drop the dead worker's live gauges."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)


# --- data lifecycle (maintenance leader) ---------------------------------------------------
MAINTENANCE_LEADER = Gauge(
    f"{PREFIX}_maintenance_leader",
    "1 in the worker that currently runs maintenance; the sum over workers should be 1.",
    multiprocess_mode="livesum",
)
MAINTENANCE_SWEEPS = Counter(
    f"{PREFIX}_maintenance_sweeps",
    "Maintenance passes by result (ok, error).",
    ["result"],
)
WEBHOOKS = Counter(
    f"{PREFIX}_webhooks",
    "Webhook deliveries of ended runs: delivered (2xx), rejected (another answer), "
    "failed (unreachable after the retries) or refused (a private address).",
    ["result"],
)
MAINTENANCE_DELETED = Counter(
    f"{PREFIX}_maintenance_deleted",
    "Rows removed by maintenance: expired threads and superseded checkpoints.",
    ["kind"],
)
MAINTENANCE_SECONDS = Histogram(
    f"{PREFIX}_maintenance_duration_seconds",
    "Duration of one maintenance pass.",
    buckets=REQUEST_BUCKETS,
)


# --- PostgreSQL connection pools (CHECKPOINTER=postgres) ------------------------------------
# Each worker sets its own pools' values (at scrape time and every few seconds); the sum over
# this host's live workers is what the host holds of the database's max_connections.
POSTGRES_POOL_CONNECTIONS = Gauge(
    f"{PREFIX}_postgres_pool_connections",
    "Open connections in the PostgreSQL pools (checkpoints, guard), summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)
POSTGRES_POOL_IN_USE = Gauge(
    f"{PREFIX}_postgres_pool_connections_in_use",
    "PostgreSQL pool connections lent out right now, summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)
POSTGRES_POOL_WAITING = Gauge(
    f"{PREFIX}_postgres_pool_requests_waiting",
    "Requests waiting for a PostgreSQL pool connection, summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)
