"""Thread records as every backend stores them: columns, rows, timestamps, search filters.

One copy for the SQLite, PostgreSQL and benchmark backends, so that a thread reads the
same whichever store holds it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

from service.observability import metrics
from service.storage.base import ThreadQuery, ThreadRecord

THREAD_COLUMNS = "thread_id, created_at, updated_at, metadata, status, error, ttl_minutes"
SORT_COLUMNS = ("thread_id", "status", "created_at", "updated_at")
PRUNE_STRATEGIES = ("keep_latest", "delete")
# What a thread record holds; `busy` is the guard's, never stored.
STORED_STATUSES = ("idle", "interrupted", "error")
# What a backend accepts as a metadata filter key (the API is stricter still).
METADATA_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

# Given a key and a value: the SQL condition and its parameters.
FilterSql = Callable[[str, Any], tuple[str, list[Any]]]


def iso_utc(moment: dt.datetime) -> str:
    """A timestamp as every backend writes it: UTC, microseconds, a trailing Z."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utcnow_iso() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))


def parse_iso(text: str) -> dt.datetime:
    """A timestamp as `iso_utc` wrote it, back to an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since(text: str) -> float:
    return (dt.datetime.now(dt.UTC) - parse_iso(text)).total_seconds()


def thread_record(
    thread_id: str,
    created_at: str | dt.datetime,
    updated_at: str | dt.datetime,
    metadata: str | bytes | dict[str, Any] | None,
    status: str,
    error: str | None,
    ttl_minutes: float | None = None,
) -> ThreadRecord:
    """A row of THREAD_COLUMNS, as text (SQLite) or typed values (PostgreSQL)."""
    return ThreadRecord(
        thread_id=thread_id,
        created_at=created_at if isinstance(created_at, str) else iso_utc(created_at),
        updated_at=updated_at if isinstance(updated_at, str) else iso_utc(updated_at),
        metadata=json.loads(metadata) if isinstance(metadata, str | bytes) else metadata or {},
        status=status,
        error=error,
        ttl_minutes=None if ttl_minutes is None else float(ttl_minutes),
    )


# Writes back what `apply_thread_update` changed (SQLite placeholders).
UPDATE_THREAD_SQL = (
    "UPDATE threads SET metadata = ?, updated_at = ?, ttl_minutes = ? WHERE thread_id = ?"
)


def apply_thread_update(
    record: ThreadRecord, metadata: dict[str, Any], ttl_minutes: float | None
) -> tuple[str, str, float | None, str]:
    """PATCH on a record: metadata merged (top-level keys), TTL set when given, touched now.

    Returns the parameters of UPDATE_THREAD_SQL for the backends that write it back.
    """
    record.metadata = {**record.metadata, **metadata}
    record.updated_at = utcnow_iso()
    if ttl_minutes is not None:
        record.ttl_minutes = ttl_minutes
    stored = json.dumps(record.metadata, ensure_ascii=False)
    return stored, record.updated_at, record.ttl_minutes, record.thread_id


def search_order(query: ThreadQuery) -> str:
    """ORDER BY for a search: a whitelisted column, ties broken by thread id."""
    if query.sort_by not in SORT_COLUMNS or query.sort_order not in ("asc", "desc"):
        raise ValueError(f"cannot sort by {query.sort_by!r} {query.sort_order!r}")
    order = f"ORDER BY {query.sort_by} {query.sort_order.upper()}"
    return order if query.sort_by == "thread_id" else f"{order}, thread_id"


def search_where(query: ThreadQuery, condition: FilterSql, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of a thread search and its parameters (`mark`: `?` or `%s`)."""
    where: list[str] = []
    params: list[Any] = []
    metadata, status = query.metadata, query.status
    if query.ids is not None:
        if not query.ids:
            return "WHERE 1 = 0", []
        where.append(f"thread_id IN ({', '.join([mark] * len(query.ids))})")
        params.extend(query.ids)
    for key, value in metadata.items():
        if not METADATA_KEY.fullmatch(key):
            raise ValueError(f"metadata filter key {key!r} is not allowed")
        sql, values = condition(key, value)
        where.append(sql)
        params.extend(values)
    if status in STORED_STATUSES:
        where.append(f"status = {mark}")
        params.append(status)
    return ("WHERE " + " AND ".join(where)) if where else "", params


# Threads waiting for a person (interrupted) or left in error, for the status gauge;
# the partial index `threads_not_idle` keeps it cheap however many threads are idle.
STATUS_COUNTS_SQL = (
    "SELECT status, count(*) AS n FROM threads WHERE status <> 'idle' GROUP BY status"
)
GAUGED_STATUSES = ("interrupted", "error")


def set_status_gauges(counts: dict[str, int]) -> None:
    for status in GAUGED_STATUSES:
        metrics.THREADS_BY_STATUS.labels(status=status).set(counts.get(status, 0))


def sqlite_filter(key: str, value: Any) -> tuple[str, list[Any]]:
    """A missing key matches null, as in PostgreSQL."""
    return f"json_extract(metadata, '$.\"{key}\"') IS json_extract(?, '$')", [json.dumps(value)]


def check_prune_strategy(strategy: str) -> None:
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r}")
