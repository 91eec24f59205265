"""A resumable stream's events as every backend stores them.

With `stream_resumable=True` a run's SSE events are kept, so that a client that lost
its stream, on any worker, replays them from its `Last-Event-ID` and then follows
the run (`GET /threads/{id}/runs/{run_id}/stream`). They are written in small
batches while the run goes on, each batch one transaction, the last one before the
run's final status; and kept RESUMABLE_STREAM_TTL_S after they were written, at most
RESUMABLE_STREAM_MAX_EVENTS a run.
"""

from __future__ import annotations

EVENT_COLUMNS = "run_id, thread_id, seq, event, data, created_at"
EVENTS_AFTER_SQL = (
    "SELECT seq, event, data FROM run_events WHERE run_id = {m} AND seq > {m} "
    "ORDER BY seq LIMIT {m}"
)
EXPIRED_EVENTS_SQL = "DELETE FROM run_events WHERE created_at < {m}"
